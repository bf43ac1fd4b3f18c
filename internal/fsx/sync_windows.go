package fsx

const dirSyncable = false
