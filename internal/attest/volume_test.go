package attest

import "testing"

func TestWindowsVolume(t *testing.T) {
	for _, tt := range []struct {
		path, device string
		trusted      bool
	}{
		{`\Device\HarddiskVolume3\Program Files\tool.exe`, `\Device\HarddiskVolume3`, true},
		{`\device\harddiskvolume12\x.exe`, `\device\harddiskvolume12`, true},
		{`\Device\HarddiskVolume1`, `\Device\HarddiskVolume1`, true},
		{`\Device\Volume{d6cc17c5-1734-4085-bce7-964f1e9f5de9}\tool.exe`, `\Device\Volume{d6cc17c5-1734-4085-bce7-964f1e9f5de9}`, false}, // WinFsp, Dokan
		{`\Device\Mup\server\share\tool.exe`, `\Device\Mup`, false},                                                                      // network
		{`\Device\HarddiskVolumeShadowCopy4\tool.exe`, `\Device\HarddiskVolumeShadowCopy4`, false},
		{`\Device\HarddiskVolume\tool.exe`, `\Device\HarddiskVolume`, false},
		{`\Device\HarddiskVolume3x\tool.exe`, `\Device\HarddiskVolume3x`, false},
		{`\Device\ImDisk0\tool.exe`, `\Device\ImDisk0`, false},
		{`C:\tool.exe`, `C:\tool.exe`, false},
		{``, ``, false},
	} {
		device, trusted := windowsVolume(tt.path)
		if device != tt.device || trusted != tt.trusted {
			t.Errorf("windowsVolume(%q) = %q, %v; want %q, %v", tt.path, device, trusted, tt.device, tt.trusted)
		}
	}
}
