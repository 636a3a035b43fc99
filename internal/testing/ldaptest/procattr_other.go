//go:build unix && !linux

package ldaptest

import "syscall"

// procAttr runs slapd as cred (the openldap user when the test runs as
// root; nil otherwise).
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
