// composecheck validates the container setup without a Docker engine:
//
//   - docker-compose.yml against the Compose Specification, loaded by compose-go (the
//     loader docker compose itself uses) with the variables of .env.example, plus the
//     project's own rules: pinned images, a health check on every long-running container,
//     start order by health, required secrets, bind-mounted files that exist;
//   - the Dockerfile with BuildKit's Dockerfile linter (the rules of `docker build
//     --check`), any warning failing, and the shape every service stage needs;
//   - configuration drift: every ECOM_*/OTEL_*/RUST_LOG variable set in compose is read
//     by the Rust sources (and, for a service built here, by that very service according
//     to docs/configuration.md), and every variable the Rust sources read is documented.
//
// Usage: composecheck [-root DIR] [-compose FILE] [-dockerfile FILE]
// Prints every problem found and exits 1 if there is any.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	"go.yaml.in/yaml/v4"
)

// The six services: compose service name = Dockerfile target = binary = crate.
var services = []string{
	"api-gateway", "auth-service", "product-service",
	"order-service", "inventory-service", "notification-service",
}

type checker struct {
	root     string
	problems []string
}

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// failed reports err, if any, as a failure of the check about name; whether it did.
func (c *checker) failed(name string, err error) bool {
	if err != nil {
		c.fail("%s: %v", name, err)
	}
	return err != nil
}

func main() {
	root := flag.String("root", ".", "repository root")
	composeFile := flag.String("compose", "docker-compose.yml", "compose file, relative to root")
	dockerfile := flag.String("dockerfile", "Dockerfile", "Dockerfile, relative to root")
	flag.Parse()

	absRoot, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(2)
	}
	c := &checker{root: absRoot}
	ctx := context.Background()

	rustVars, rustVarsAnywhere := c.rustVariables()
	doc := c.configurationDoc()
	c.checkDoc(doc, rustVars, rustVarsAnywhere)

	stages := c.checkDockerfile(ctx, *dockerfile)
	c.checkDockerignore()
	c.checkCompose(ctx, *composeFile, rustVars, doc, stages)

	if len(c.problems) > 0 {
		for _, p := range c.problems {
			fmt.Fprintln(os.Stderr, "FAIL:", p)
		}
		fmt.Fprintf(os.Stderr, "composecheck: %d problem(s)\n", len(c.problems))
		os.Exit(1)
	}
	fmt.Printf("composecheck: %s, %s and docs/configuration.md are consistent (%d variables read by the services)\n",
		*composeFile, *dockerfile, len(rustVars))
}

// ------------------------------------------------------------------ Rust sources --

var rustVarLiteral = regexp.MustCompile(`"((?:ECOM|OTEL)_[A-Z0-9_]+|RUST_LOG|DATABASE_URL)"`)

// rustVariables returns the configuration variables the services read (string literals
// in <crate>/src outside #[cfg(test)] modules) and, second, those named anywhere in the
// crates (tests included).
func (c *checker) rustVariables() (map[string]bool, map[string]bool) {
	read := map[string]bool{}
	anywhere := map[string]bool{}
	crates, _ := filepath.Glob(filepath.Join(c.root, "*", "Cargo.toml"))
	for _, manifest := range crates {
		crate := filepath.Dir(manifest)
		_ = filepath.WalkDir(crate, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "target" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".rs") {
				return nil
			}
			data, err := os.ReadFile(path)
			if c.failed(path, err) {
				return nil
			}
			text := string(data)
			for _, m := range rustVarLiteral.FindAllStringSubmatch(text, -1) {
				anywhere[m[1]] = true
			}
			rel, _ := filepath.Rel(crate, path)
			if !strings.HasPrefix(rel, "src"+string(filepath.Separator)) {
				return nil
			}
			// Test modules sit at the end of a file, after #[cfg(test)].
			if i := strings.Index(text, "\n#[cfg(test)]"); i >= 0 {
				text = text[:i]
			}
			for _, m := range rustVarLiteral.FindAllStringSubmatch(text, -1) {
				read[m[1]] = true
			}
			return nil
		})
	}
	if len(read) == 0 {
		c.fail("found no configuration variable in the Rust sources under %s", c.root)
	}
	return read, anywhere
}

// --------------------------------------------------------- docs/configuration.md --

// docVar is one row of a table in docs/configuration.md.
type docVar struct {
	readBy map[string]bool // service names; empty for test-only variables
	line   int
}

var docRow = regexp.MustCompile("^\\|\\s*`([A-Z][A-Z0-9_]*)`\\s*\\|([^|]*)\\|([^|]*)\\|")

// configurationDoc parses the variable tables: | `NAME` | default | read by | meaning |.
// "read by" names services, or says "every service".
func (c *checker) configurationDoc() map[string]docVar {
	path := filepath.Join(c.root, "docs", "configuration.md")
	f, err := os.Open(path)
	if err != nil {
		c.fail("docs/configuration.md: %v", err)
		return nil
	}
	defer f.Close()
	vars := map[string]docVar{}
	scanner := bufio.NewScanner(f)
	for n := 1; scanner.Scan(); n++ {
		m := docRow.FindStringSubmatch(scanner.Text())
		if m == nil {
			continue
		}
		name, readByCell := m[1], strings.ToLower(m[3])
		if _, dup := vars[name]; dup {
			c.fail("docs/configuration.md:%d: %s is listed twice", n, name)
		}
		v := docVar{readBy: map[string]bool{}, line: n}
		if strings.Contains(readByCell, "every service") {
			for _, s := range services {
				v.readBy[s] = true
			}
		}
		for _, s := range services {
			if strings.Contains(readByCell, s) {
				v.readBy[s] = true
			}
		}
		if len(v.readBy) == 0 && !strings.Contains(readByCell, "tests") {
			c.fail("docs/configuration.md:%d: %s: the \"read by\" column names no service (nor \"tests\")", n, name)
		}
		vars[name] = v
	}
	if len(vars) == 0 {
		c.fail("docs/configuration.md: no variable table rows found")
	}
	return vars
}

func (c *checker) checkDoc(doc map[string]docVar, read, anywhere map[string]bool) {
	if doc == nil {
		return
	}
	for _, name := range sortedKeys(read) {
		if _, ok := doc[name]; !ok {
			c.fail("docs/configuration.md does not document %s, which the Rust sources read", name)
		}
	}
	for _, name := range sortedKeys(doc) {
		isOurs := rustVarLiteral.MatchString(`"` + name + `"`)
		if isOurs && !anywhere[name] {
			c.fail("docs/configuration.md:%d documents %s, which no Rust source reads", doc[name].line, name)
		}
	}
}

// -------------------------------------------------------------------- Dockerfile --

// offlineResolver answers base-image lookups without a registry: the linter needs an
// image config for every FROM, not its content.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + strings.Repeat("0", 64)}},
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
	}
	dt, err := json.Marshal(cfg)
	return ref, "", dt, err
}

// stageInfo is what the compose checks need to know about a Dockerfile stage.
type stageInfo struct {
	exposed     []string
	healthcheck []string
	user        string
	entrypoint  []string
}

func (c *checker) checkDockerfile(ctx context.Context, name string) map[string]stageInfo {
	path := filepath.Join(c.root, name)
	dt, err := os.ReadFile(path)
	if c.failed(name, err) {
		return nil
	}
	if !c.lintDockerfile(ctx, name, dt) {
		return nil
	}

	// The shape of each service stage, following FROM <earlier stage> chains.
	ast, err := parser.Parse(strings.NewReader(string(dt)))
	if c.failed(name, err) {
		return nil
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if c.failed(name, err) {
		return nil
	}
	byName := map[string]instructions.Stage{}
	for _, s := range stages {
		byName[s.Name] = s
	}
	c.checkPinnedBases(name, stages, metaArgs, byName)
	infos := map[string]stageInfo{}
	for _, svc := range services {
		s, ok := byName[svc]
		if !ok {
			c.fail("%s: no stage named %s (the build target of that service)", name, svc)
			continue
		}
		infos[svc] = stageOf(byName, s, 0)
		c.checkServiceStage(name, svc, infos[svc])
	}
	return infos
}

// lintDockerfile runs BuildKit's linter, as `docker build --check` runs it, over every
// stage; false when the linter itself could not run.
func (c *checker) lintDockerfile(ctx context.Context, name string, dt []byte) bool {
	main := llb.Local("context")
	opt := dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{},
		MainContext:  &main,
		SourceMap:    &llb.SourceMap{Definition: &llb.Definition{}, Filename: name, Language: "Dockerfile", Data: dt},
		MetaResolver: offlineResolver{},
	}
	results, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
	if err != nil {
		c.fail("%s: lint: %v", name, err)
		return false
	}
	for _, w := range results.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		c.fail("%s:%d: %s: %s (%s)", name, line, w.RuleName, w.Detail, w.URL)
	}
	if results.Error != nil {
		c.fail("%s: %s", name, results.Error.Message)
	}
	return true
}

// checkPinnedBases: every base image that is not an earlier stage is pinned to a
// version (ARG defaults before the first FROM expanded).
func (c *checker) checkPinnedBases(name string, stages []instructions.Stage, metaArgs []instructions.ArgCommand, byName map[string]instructions.Stage) {
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	argRef := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	for _, s := range stages {
		if _, isStage := byName[s.BaseName]; isStage || s.BaseName == "scratch" {
			continue
		}
		image := argRef.ReplaceAllStringFunc(s.BaseName, func(m string) string {
			return args[argRef.FindStringSubmatch(m)[1]]
		})
		if err := pinned(image); err != nil {
			c.fail("%s: stage %s: FROM %s: %v", name, s.Name, image, err)
		}
	}
}

// stageOf is what stage s ends up with, its earlier stages' instructions included.
func stageOf(byName map[string]instructions.Stage, s instructions.Stage, depth int) stageInfo {
	var info stageInfo
	if base, ok := byName[s.BaseName]; ok && depth < 10 {
		info = stageOf(byName, base, depth+1)
	}
	for _, cmd := range s.Commands {
		switch cmd := cmd.(type) {
		case *instructions.ExposeCommand:
			info.exposed = append(info.exposed, cmd.Ports...)
		case *instructions.HealthCheckCommand:
			info.healthcheck = cmd.Health.Test
		case *instructions.UserCommand:
			info.user = cmd.User
		case *instructions.EntrypointCommand:
			info.entrypoint = cmd.CmdLine
		}
	}
	return info
}

// checkServiceStage: a service's stage exposes its one port, probes /health/ready on
// it, runs as a user other than root and runs the service's binary.
func (c *checker) checkServiceStage(name, svc string, info stageInfo) {
	if len(info.exposed) != 1 {
		c.fail("%s: stage %s exposes %v, want exactly its own port", name, svc, info.exposed)
	}
	if len(info.healthcheck) == 0 || info.healthcheck[0] == "NONE" {
		c.fail("%s: stage %s has no HEALTHCHECK", name, svc)
	} else if len(info.exposed) == 1 && !strings.Contains(strings.Join(info.healthcheck, " "), ":"+info.exposed[0]+"/health/ready") {
		c.fail("%s: stage %s: HEALTHCHECK %v does not probe /health/ready on port %s", name, svc, info.healthcheck, info.exposed[0])
	}
	if u := strings.Split(info.user, ":")[0]; u == "" || u == "root" || u == "0" {
		c.fail("%s: stage %s runs as root (USER %q)", name, svc, info.user)
	}
	if len(info.entrypoint) == 0 || filepath.Base(info.entrypoint[0]) != svc {
		c.fail("%s: stage %s: ENTRYPOINT %v does not run the %s binary", name, svc, info.entrypoint, svc)
	}
}

func (c *checker) checkDockerignore() {
	dt, err := os.ReadFile(filepath.Join(c.root, ".dockerignore"))
	if err != nil {
		c.fail(".dockerignore: %v", err)
		return
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(dt), "\n") {
		lines[strings.Trim(strings.TrimSpace(l), "/")] = true
	}
	for _, want := range []string{"target", "data", ".git"} {
		if !lines[want] {
			c.fail(".dockerignore does not exclude %s", want)
		}
	}
}

// ---------------------------------------------------------------- docker-compose --

var healthURL = regexp.MustCompile(`^http://127\.0\.0\.1:(\d+)/health/ready$`)

func (c *checker) checkCompose(ctx context.Context, name string, rustVars map[string]bool, doc map[string]docVar, stages map[string]stageInfo) {
	composePath := filepath.Join(c.root, name)
	envExample := filepath.Join(c.root, ".env.example")
	example, err := dotenv.GetEnvFromFile(map[string]string{}, []string{envExample})
	if err != nil {
		c.fail(".env.example: %v", err)
		return
	}
	if !c.checkComposeVariables(ctx, name, composePath, example) {
		return
	}
	project, ok := c.loadProject(ctx, name, composePath, envExample)
	if !ok {
		return
	}

	// 3. The project's rules.
	oneShot := map[string]bool{}
	for _, svc := range project.Services {
		if svc.Restart == types.RestartPolicyNo && svc.HealthCheck != nil && svc.HealthCheck.Disable {
			oneShot[svc.Name] = true
		}
	}
	for _, want := range services {
		if _, ok := project.Services[want]; !ok {
			c.fail("%s: service %s is missing", name, want)
		}
	}
	for _, svcName := range sortedKeys(project.Services) {
		c.checkComposeService(name, svcName, project.Services[svcName], oneShot, rustVars, doc, stages)
	}
}

// checkComposeVariables: false when the file could not be read.
func (c *checker) checkComposeVariables(ctx context.Context, name, composePath string, example map[string]string) bool {
	// 1. The variables compose interpolates: all listed in .env.example and nothing else
	//    there; every password required (${VAR:?message}) and a placeholder in the example.
	rawOpts, err := cli.NewProjectOptions([]string{composePath},
		cli.WithWorkingDirectory(c.root), cli.WithInterpolation(false))
	if c.failed(name, err) {
		return false
	}
	model, err := rawOpts.LoadModel(ctx)
	if c.failed(name, err) {
		return false
	}
	used := template.ExtractVariables(model, template.DefaultPattern)
	for _, v := range sortedKeys(used) {
		if _, ok := example[v]; !ok {
			c.fail("%s uses ${%s}, which .env.example does not list", name, v)
		}
		if isSecret(v) && !used[v].Required {
			c.fail("%s: the secret ${%s} must be required: ${%s:?message}", name, v, v)
		}
	}
	for _, v := range sortedKeys(example) {
		if _, ok := used[v]; !ok {
			c.fail(".env.example lists %s, which %s does not use", v, name)
		}
		if isSecret(v) && !strings.HasPrefix(example[v], "change-me") {
			c.fail(".env.example: %s must be a change-me placeholder, not a real value", v)
		}
	}
	return true
}

// loadProject loads the file as `docker compose config` does; false when it cannot.
func (c *checker) loadProject(ctx context.Context, name, composePath, envExample string) (*types.Project, bool) {
	// 2. Schema validation, interpolation and consistency, as `docker compose config` does,
	//    with exactly the variables of .env.example (not this machine's environment).
	opts, err := cli.NewProjectOptions([]string{composePath},
		cli.WithWorkingDirectory(c.root),
		cli.WithEnvFiles(envExample),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if c.failed(name, err) {
		return nil, false
	}
	project, err := opts.LoadProject(ctx)
	if c.failed(name, err) {
		return nil, false
	}

	// Without the required variables the file must refuse to load.
	bare, err := cli.NewProjectOptions([]string{composePath},
		cli.WithWorkingDirectory(c.root), cli.WithEnv([]string{}), cli.WithEnvFiles(os.DevNull), cli.WithDotEnv)
	if err == nil {
		if _, err = bare.LoadProject(ctx); err == nil {
			c.fail("%s loads without any secret set: required secrets must use ${VAR:?message}", name)
		}
	}
	return project, true
}

// checkComposeService holds one service of the project to the project's rules.
func (c *checker) checkComposeService(name, svcName string, svc types.ServiceConfig, oneShot map[string]bool, rustVars map[string]bool, doc map[string]docVar, stages map[string]stageInfo) {
	where := fmt.Sprintf("%s: service %s", name, svcName)
	built := svc.Build != nil
	if built {
		c.checkBuiltService(where, svc, stages)
	} else if err := pinned(svc.Image); err != nil {
		c.fail("%s: image %q: %v", where, svc.Image, err)
	}
	if !oneShot[svcName] {
		hc := svc.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 {
			c.fail("%s has no health check", where)
		}
	}
	for dep, d := range svc.DependsOn {
		switch {
		case d.Condition == types.ServiceConditionHealthy && !oneShot[dep]:
		case d.Condition == types.ServiceConditionCompletedSuccessfully && oneShot[dep]:
		default:
			c.fail("%s: depends_on %s with condition %q: want service_healthy (service_completed_successfully for a one-shot job)", where, dep, d.Condition)
		}
	}
	c.checkMounts(where, svc)
	c.checkEnvironment(where, svcName, svc, built, rustVars, doc)
}

// checkMounts: every file a service mounts from the repository exists (and parses, for YAML).
func (c *checker) checkMounts(where string, svc types.ServiceConfig) {
	for _, vol := range svc.Volumes {
		if vol.Type != types.VolumeTypeBind {
			continue
		}
		rel, err := filepath.Rel(c.root, vol.Source)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a host path such as the Docker socket
		}
		if _, err := os.Stat(vol.Source); err != nil {
			c.fail("%s mounts %s, which does not exist in the repository", where, rel)
			continue
		}
		if ext := filepath.Ext(vol.Source); ext == ".yaml" || ext == ".yml" {
			if err := parseYAML(vol.Source); err != nil {
				c.fail("%s mounts %s: %v", where, rel, err)
			}
		}
	}
}

// checkEnvironment: every variable a service is given is read by the Rust sources and,
// for the six services, by that service according to docs/configuration.md.
func (c *checker) checkEnvironment(where, svcName string, svc types.ServiceConfig, built bool, rustVars map[string]bool, doc map[string]docVar) {
	// Configuration drift against the Rust sources and docs/configuration.md.
	for _, key := range sortedKeys(svc.Environment) {
		ours := strings.HasPrefix(key, "ECOM_") || strings.HasPrefix(key, "OTEL_") || key == "RUST_LOG"
		if (!ours && !built) || notOurs[key] {
			continue
		}
		if !rustVars[key] {
			c.fail("%s sets %s, which no Rust source reads", where, key)
			continue
		}
		if built && doc != nil {
			if dv, ok := doc[key]; ok && !dv.readBy[svcName] {
				c.fail("%s sets %s, which docs/configuration.md says %s does not read", where, key, svcName)
			}
		}
	}
}

// Variables the services' runtime reads rather than our code (glibc's allocator).
var notOurs = map[string]bool{"GLIBC_TUNABLES": true}

func (c *checker) checkBuiltService(where string, svc types.ServiceConfig, stages map[string]stageInfo) {
	if !slices.Contains(services, svc.Name) {
		c.fail("%s is built from the Dockerfile but is not one of the six services", where)
		return
	}
	if filepath.Clean(svc.Build.Context) != filepath.Clean(c.root) || filepath.Base(svc.Build.Dockerfile) != "Dockerfile" {
		c.fail("%s: build must use the repository's Dockerfile (context %q, dockerfile %q)", where, svc.Build.Context, svc.Build.Dockerfile)
	}
	if svc.Build.Target != svc.Name {
		c.fail("%s: build target %q, want %q", where, svc.Build.Target, svc.Name)
	}
	hc := svc.HealthCheck
	if hc == nil || len(hc.Test) == 0 {
		return
	}
	url := hc.Test[len(hc.Test)-1]
	m := healthURL.FindStringSubmatch(url)
	if m == nil {
		c.fail("%s: health check %v does not probe http://127.0.0.1:<port>/health/ready", where, []string(hc.Test))
		return
	}
	if info, ok := stages[svc.Name]; ok && len(info.exposed) == 1 && info.exposed[0] != m[1] {
		c.fail("%s: health check probes port %s but its Dockerfile stage exposes %s", where, m[1], info.exposed[0])
	}
}

// pinned accepts name:tag (not latest) or name@digest.
func pinned(image string) error {
	if image == "" {
		return fmt.Errorf("no image and no build")
	}
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return err
	}
	if _, ok := ref.(reference.Digested); ok {
		return nil
	}
	tagged, ok := ref.(reference.Tagged)
	if !ok {
		return fmt.Errorf("no tag: pin a version")
	}
	if tagged.Tag() == "latest" || tagged.Tag() == "stable" {
		return fmt.Errorf("moving tag %q: pin a version", tagged.Tag())
	}
	return nil
}

// parseYAML reports whether path holds well-formed YAML (every document of it).
func parseYAML(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var doc any
		if err := dec.Decode(&doc); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func isSecret(name string) bool {
	return strings.Contains(name, "PASSWORD") || strings.Contains(name, "SECRET") || strings.HasSuffix(name, "_TOKEN")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
