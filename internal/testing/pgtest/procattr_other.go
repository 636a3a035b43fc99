//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs initdb and postgres as the postgres user when the test runs
// as root.
func (s *Server) procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: s.cred}
}
