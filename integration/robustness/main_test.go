package robustness

import (
	"fmt"
	"os"
	"testing"
	"time"
)

var env *Env

func TestMain(m *testing.M) {
	var err error
	if env, err = NewEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	start := time.Now()
	code := m.Run()
	env.Close()
	if path := os.Getenv("ZKV_ROBUSTNESS_REPORT"); path != "" && len(env.Results()) > 0 {
		f, err := os.Create(path)
		if err == nil {
			WriteReport(f, env.Results(), env.Features, time.Since(start))
			err = f.Close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			code = 1
		}
	}
	os.Exit(code)
}
