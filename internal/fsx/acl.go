package fsx

// PrivateSDDL is the Windows DACL of a private directory: protected from the
// parent's entries, full access for sid only, inherited by every file and
// directory created inside. It is Windows' counterpart of DirMode.
func PrivateSDDL(sid string) string { return "D:P(A;OICI;FA;;;" + sid + ")" }
