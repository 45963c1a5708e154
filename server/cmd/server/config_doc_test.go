package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// serverFlags returns the names of the server's flags, as `server -h` lists them.
func serverFlags(t *testing.T) []string {
	t.Helper()
	var help bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, env(), &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -(\w+)`).FindAllStringSubmatch(help.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) < 10 {
		t.Fatalf("only %d flags in -h:\n%s", len(names), help.String())
	}
	return names
}

// docFlags reads the rows "| `-flag` | `ZKV_FLAG` | default | meaning |" of a document.
func docFlags(doc string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		out[strings.Trim(strings.TrimSpace(cells[1]), "`-")] = strings.Trim(strings.TrimSpace(cells[2]), "`")
	}
	return out
}

// checkFlagDoc compares a document's flag table with the real flags.
func checkFlagDoc(doc map[string]string, flags []string) []error {
	var errs []error
	for _, f := range flags {
		env, ok := doc[f]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("flag -%s is not in docs/configuration.md", f))
		case env != "ZKV_"+strings.ToUpper(f):
			errs = append(errs, fmt.Errorf("flag -%s: environment %q in docs/configuration.md, want ZKV_%s", f, env, strings.ToUpper(f)))
		}
	}
	for f := range doc {
		if !slices.Contains(flags, f) {
			errs = append(errs, fmt.Errorf("docs/configuration.md lists -%s, which the server does not have", f))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

func TestConfigurationDocListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkFlagDoc(docFlags(string(b)), serverFlags(t)) {
		t.Error(err)
	}
}

// TestConfigurationDocCheckFails: the check catches an undocumented flag, a documented flag
// the server lacks, and a wrong variable name.
func TestConfigurationDocCheckFails(t *testing.T) {
	doc := docFlags("| `-host` | `ZKV_HOST` | x | y |\n| `-port` | `ZKV_PRT` | x | y |\n| `-gone` | `ZKV_GONE` | x | y |\n")
	var msgs []string
	for _, e := range checkFlagDoc(doc, []string{"host", "port", "id"}) {
		msgs = append(msgs, e.Error())
	}
	want := []string{
		"docs/configuration.md lists -gone, which the server does not have",
		"flag -id is not in docs/configuration.md",
		`flag -port: environment "ZKV_PRT" in docs/configuration.md, want ZKV_PORT`,
	}
	if !slices.Equal(msgs, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
}
