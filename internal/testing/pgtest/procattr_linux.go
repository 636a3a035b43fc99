package pgtest

import "syscall"

// procAttr runs initdb and postgres as the postgres user when the test runs
// as root, and asks the kernel to stop postgres (SIGQUIT: immediate
// shutdown) if the test process dies without closing the server.
func (s *Server) procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
}
