package cli

// selfImage is what to execute to run this program again: the image this
// process runs, even if its path was replaced since.
func selfImage() (string, error) { return "/proc/self/exe", nil }
