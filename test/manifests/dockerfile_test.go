package manifests_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image cannot be built here because there is no container engine, so
// these tests check the Dockerfile's instructions and build the router the
// way its build stage does.

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	command string
	args    string
}

// stage is one FROM and the instructions after it.
type stage struct {
	from         string
	instructions []instruction
}

// parseDockerfile splits the Dockerfile into stages. It understands only what
// the Dockerfile uses: comments, blank lines and backslash continuations.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()

	data := readFile(t, filepath.Join(repoRoot(t), "Dockerfile"))

	var stages []stage
	var pending strings.Builder
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if continued, ok := strings.CutSuffix(line, "\\"); ok {
			pending.WriteString(continued + " ")
			continue
		}
		pending.WriteString(line)
		full := pending.String()
		pending.Reset()

		command, args, _ := strings.Cut(full, " ")
		inst := instruction{command: strings.ToUpper(command), args: strings.TrimSpace(args)}
		switch {
		case inst.command == "FROM":
			stages = append(stages, stage{from: inst.args})
		case len(stages) > 0:
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, inst)
		}
	}
	return stages
}

func (s stage) find(command string) []string {
	var args []string
	for _, inst := range s.instructions {
		if inst.command == command {
			args = append(args, inst.args)
		}
	}
	return args
}

func TestDockerfileStages(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, expected a build stage and a final stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// the build stage compiles ./cmd/router statically
	runs := strings.Join(build.find("RUN"), "\n")
	goBuild := regexp.MustCompile(`CGO_ENABLED=0 .*go build .*-o /out/router \./cmd/router`)
	if !goBuild.MatchString(runs) {
		t.Errorf("build stage has no RUN matching %s:\n%s", goBuild, runs)
	}

	// the final stage is distroless static or scratch, non-root, and runs /router
	base := strings.Fields(final.from)[0]
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final stage is FROM %s, expected distroless static or scratch", base)
	}
	users := final.find("USER")
	if len(users) == 0 {
		t.Error("final stage sets no USER")
	}
	for _, user := range users {
		name, _, _ := strings.Cut(user, ":")
		if name == "0" || name == "root" {
			t.Errorf("final stage USER %s is root", user)
		}
	}
	if !strings.HasSuffix(base, ":nonroot") && len(users) == 0 {
		t.Error("final stage neither uses a nonroot base nor sets USER")
	}
	if got := final.find("ENTRYPOINT"); len(got) != 1 || got[0] != `["/router"]` {
		t.Errorf("final ENTRYPOINT = %v, expected [\"/router\"]", got)
	}
	if got := final.find("COPY"); len(got) != 1 || got[0] != "--from=build /out/router /router" {
		t.Errorf("final COPY = %v, expected only the router binary from the build stage", got)
	}
}

// TestRouterBuildsStatic builds ./cmd/router with CGO_ENABLED=0, as the
// Dockerfile does, and checks that the binary needs no dynamic loader or
// shared library, which the distroless static image does not have. It
// leaves out the Dockerfile's -trimpath and -ldflags, which only shrink the
// binary, so that it shares the build cache with `make build`.
func TestRouterBuildsStatic(t *testing.T) {
	root := repoRoot(t)
	out := filepath.Join(t.TempDir(), "router")

	cmd := []string{"go", "build", "-o", out, "./cmd/router"}
	_, stderr, err := runCommand(root, []string{"CGO_ENABLED=0", "GOOS=linux"}, nil, cmd[0], cmd[1:]...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, stderr)
	}

	binary, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer binary.Close()

	for _, prog := range binary.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("router binary has a PT_INTERP header: it needs a dynamic loader")
		}
	}
	libs, err := binary.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("router binary imports shared libraries %v", libs)
	}
}

// TestDockerignoreKeepsSources checks that .dockerignore excludes none of
// the files the build stage needs: go.mod, go.sum and the folders of every
// package of this module that ./cmd/router imports.
func TestDockerignoreKeepsSources(t *testing.T) {
	root := repoRoot(t)
	patterns := dockerignorePatterns(t, filepath.Join(root, ".dockerignore"))

	stdout, stderr, err := runCommand(root, nil, nil, "go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/router")
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr)
	}

	needed := []string{"go.mod", "go.sum"}
	for dir := range strings.FieldsSeq(string(stdout)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) == 2 {
		t.Fatal("go list found no package of this module for ./cmd/router")
	}

	for _, file := range needed {
		for _, pattern := range patterns {
			if excludes(pattern, file) {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pattern, file)
			}
		}
	}
}

// dockerignorePatterns returns the patterns of a .dockerignore file. It
// fails the test on an exception (!pattern), which excludes cannot judge.
func dockerignorePatterns(t *testing.T, file string) []string {
	t.Helper()

	var patterns []string
	for line := range strings.Lines(string(readFile(t, file))) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore exception %q is not supported by this test", line)
		}
		patterns = append(patterns, strings.Trim(line, "/"))
	}
	return patterns
}

// excludes reports whether a .dockerignore pattern matches file or one of
// its parent folders. Patterns are matched from the context root, as the
// Docker builder does, with path.Match syntax.
func excludes(pattern, file string) bool {
	for p := file; p != "." && p != "/"; p = path.Dir(p) {
		if ok, _ := path.Match(pattern, p); ok {
			return true
		}
	}
	return false
}
