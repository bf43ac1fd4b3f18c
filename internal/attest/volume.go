package attest

import "strings"

// diskVolumePrefix is how Windows names a volume on a disk in the NT
// namespace (\Device\HarddiskVolume3\...): fixed and removable disks,
// mounted VHDs, BitLocker and Storage Spaces volumes alike. A user-mode
// filesystem (WinFsp, Dokan) gets a volume device of its own
// (\Device\Volume{GUID}, or a name its driver chooses) and network files
// come through \Device\Mup; like FUSE on Linux, such a filesystem can show
// the daemon other bytes than the loader maps, and may call itself NTFS,
// so the device is what is judged, not the filesystem's name.
const diskVolumePrefix = `\Device\HarddiskVolume`

// windowsVolume returns the volume device of an NT path and whether it is
// a disk volume the daemon trusts.
func windowsVolume(ntPath string) (device string, trusted bool) {
	const dev = `\Device\`
	if len(ntPath) < len(dev) || !strings.EqualFold(ntPath[:len(dev)], dev) {
		return ntPath, false
	}
	device = ntPath
	if i := strings.IndexByte(ntPath[len(dev):], '\\'); i >= 0 {
		device = ntPath[:len(dev)+i]
	}
	n := len(diskVolumePrefix)
	if len(device) <= n || !strings.EqualFold(device[:n], diskVolumePrefix) {
		return device, false
	}
	for _, c := range device[n:] {
		if c < '0' || c > '9' {
			return device, false
		}
	}
	return device, true
}
