/*
 * bcryptprimitives.dll shim for Wine 8, which lacks ProcessPrng. Go 1.22+
 * Windows programs import bcryptprimitives!ProcessPrng for all their random
 * bytes and fail to start without it. This DLL exports ProcessPrng and
 * forwards to advapi32!SystemFunction036 (RtlGenRandom), which Wine has.
 * It is for CI under Wine only; never ship it to a real Windows machine.
 */
#include <windows.h>

typedef BOOLEAN(WINAPI *rtlgenrandom_fn)(PVOID, ULONG);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	static rtlgenrandom_fn gen;
	if (!gen) {
		HMODULE h = LoadLibraryA("advapi32.dll");
		if (!h)
			return FALSE;
		gen = (rtlgenrandom_fn)GetProcAddress(h, "SystemFunction036");
		if (!gen)
			return FALSE;
	}
	/* RtlGenRandom takes a ULONG length; feed it in pieces. */
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!gen(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
