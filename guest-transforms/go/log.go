package smt

import (
	"fmt"
	"os"
)

// Level is a log level of the host's log.
type Level uint8

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

func (l Level) String() string {
	return [...]string{"trace", "debug", "info", "warn", "error"}[min(int(l), 4)]
}

// logTo writes one log line: into the host's structured log in a component
// (tagged there with the transform, its version and the record), to stderr
// natively.
var logTo = func(level Level, message string) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", level, message)
}

// Log writes message at level into the host's log.
func Log(level Level, message string) { logTo(level, message) }

func Tracef(format string, args ...any) { logTo(LevelTrace, fmt.Sprintf(format, args...)) }
func Debugf(format string, args ...any) { logTo(LevelDebug, fmt.Sprintf(format, args...)) }
func Infof(format string, args ...any)  { logTo(LevelInfo, fmt.Sprintf(format, args...)) }
func Warnf(format string, args ...any)  { logTo(LevelWarn, fmt.Sprintf(format, args...)) }
func Errorf(format string, args ...any) { logTo(LevelError, fmt.Sprintf(format, args...)) }
