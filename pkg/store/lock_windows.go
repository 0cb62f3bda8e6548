//go:build windows

package store

import "os"

// TryLock on Windows uses an exclusively created lock file (removed on unlock).
func TryLock(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path+".excl", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return func() { f.Close(); os.Remove(path + ".excl") }, true, nil
}
