package vecnetd

import "golang.org/x/sys/unix"

// umask sets the process umask so that the API socket is never, even for a
// moment, accessible to other users.
func umask(m int) int { return unix.Umask(m) }
