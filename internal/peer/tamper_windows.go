package peer

// Tampered on Windows looks for an attached debugger. What Windows offers
// no cheap, reliable view of (a DLL injected with a remote thread, an
// AppInit_DLLs entry, a hook) is not checked; docs/threat-model.md says so.
func (p *Peer) Tampered() (reason string, err error) {
	tracer, tid, err := p.TracedBy()
	if err != nil {
		return "", err
	}
	if tracer != 0 {
		return TracedReason(tracer, tid, p.PID), nil
	}
	return "", nil
}
