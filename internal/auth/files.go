package auth

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteSecret writes data to path with mode 0600 (replacing a file of the
// same name atomically), so that no other user reads it.
func WriteSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CheckSecretFile says, as an error to log as a warning, when the file at
// path (which holds a secret) is readable by its group or by everyone.
// A file that does not exist is no concern of this check.
func CheckSecretFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("%s holds secrets and is readable by others (mode %04o); run chmod 600 %s", path, mode, path)
	}
	return nil
}
