package ldaptest

import "syscall"

// procAttr runs slapd as cred (the openldap user when the test runs as
// root; nil otherwise), and asks the kernel to stop slapd if the test
// process dies without stopping it.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
