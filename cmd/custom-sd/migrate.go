package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kingpin/v2"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// The files migrate writes into its output directory.
const (
	migrateConfigName     = "custom-sd.yml"
	migratePrometheusName = "prometheus.yml"
	migrateSDDir          = "sd"
)

// migrateOptions is the command line of `custom-sd migrate`.
type migrateOptions struct {
	prometheus string
	out        string
	httpSD     string
	force      bool
}

// runMigrate runs `custom-sd migrate`; args follow the word migrate. It
// prints a summary to stdout and returns 0, or prints one line to stderr
// and returns 2.
func runMigrate(args []string, stdout, stderr io.Writer) int {
	opts, code, done := parseMigrate(args, stdout, stderr)
	if done {
		return code
	}
	m, err := migrate(opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	m.summary(stdout)
	return 0
}

// parseMigrate parses the command line; done says to return code at once
// (after --help, or a bad command line).
func parseMigrate(args []string, stdout, stderr io.Writer) (opts migrateOptions, code int, done bool) {
	app := kingpin.New(name+" migrate", "Converts a Prometheus configuration that uses consul_sd_configs into custom-sd's configuration file, "+
		"and a copy of the Prometheus configuration that reads custom-sd's output (file_sd_configs, or http_sd_configs with --http-sd) instead.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	exited := -1
	app.Terminate(func(c int) { exited = c })
	app.Arg("prometheus-config", "The Prometheus configuration file to convert; it is not changed.").Required().StringVar(&opts.prometheus)
	app.Flag("out", "Directory to write "+migrateConfigName+" and "+migratePrometheusName+" into; created if missing.").Required().StringVar(&opts.out)
	app.Flag("http-sd", "custom-sd's base URL, e.g. http://custom-sd:9099: Prometheus asks <url>/targets/<job> over HTTP SD instead of reading files.").StringVar(&opts.httpSD)
	app.Flag("force", "Overwrite "+migrateConfigName+" and "+migratePrometheusName+" in the output directory.").BoolVar(&opts.force)
	_, err := app.Parse(args)
	if exited >= 0 {
		return opts, exited, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: migrate: %s\n", name, oneLine(err))
		return opts, 2, true
	}
	return opts, 0, false
}

// migration is what migrate did, for the summary.
type migration struct {
	prometheus, out, httpSD string
	scrapes                 []migratedScrape
	agents                  []*migratedAgent
	named                   bool // consuls: rather than consul:
	notes                   []migrateNote
	configPaths             []pathChange
	promPaths               []pathChange
	reformatted             string
	secrets                 bool
	warnings                []string
}

type migratedScrape struct {
	name string
	jobs []migratedJob
}

type migratedJob struct {
	name, consul, target string
}

type migratedAgent struct {
	name  string
	agent *config.Consul
	key   string
}

type migrateNote struct {
	scrape string
	entry  int
	fieldNote
}

// jobNameChars are the characters custom-sd allows in a job name after
// the first (internal/config's jobName).
var jobNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// sanitizeName makes s a valid job name: other characters become _.
func sanitizeName(s string) string {
	s = jobNameChars.ReplaceAllString(s, "_")
	if s == "" || s[0] == '.' || s[0] == '-' {
		s = "_" + strings.TrimLeft(s, ".-")
	}
	return s
}

// unique returns name, or name_2, name_3... whichever is not taken yet,
// and takes it.
func unique(name string, taken map[string]bool) string {
	n := name
	for i := 2; taken[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	taken[n] = true
	return n
}

// relocate maps a path relative to from into one relative to to that
// names the same file; absolute paths stay as they are.
func relocate(from, to string) func(string) string {
	return func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		abs := filepath.Join(from, p)
		r, err := filepath.Rel(to, abs)
		if err != nil {
			return abs
		}
		if r == filepath.Clean(p) {
			return p
		}
		return r
	}
}

// migrate does the work of `custom-sd migrate`.
func migrate(opts migrateOptions) (*migration, error) {
	m, err := newMigration(opts)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(m.prometheus)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(m.prometheus)
	if err != nil {
		return nil, err
	}
	pf, scrapes, err := consulScrapesOf(src, opts.prometheus)
	if err != nil {
		return nil, err
	}
	rel := relocate(filepath.Dir(m.prometheus), m.out)
	f, entries, err := m.convert(opts.prometheus, scrapes, rel)
	if err != nil {
		return nil, err
	}
	cfg, err := marshalConfig(&f, opts.prometheus, origins(scrapes))
	if err != nil {
		return nil, err
	}
	prom, err := m.rewritePrometheus(pf, scrapes, entries, rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.prometheus, err)
	}
	m.warn(pf)
	if err := m.write(cfg, prom, fi.Mode().Perm(), opts.force); err != nil {
		return nil, err
	}
	if _, err := config.Load(filepath.Join(m.out, migrateConfigName)); err != nil {
		m.warnings = append(m.warnings, fmt.Sprintf("%s does not load here: %s (a file it names may exist only where custom-sd runs)", migrateConfigName, oneLine(err)))
	}
	return m, nil
}

// newMigration resolves the command line's paths and checks --http-sd.
func newMigration(opts migrateOptions) (*migration, error) {
	promPath, err := filepath.Abs(opts.prometheus)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opts.out)
	if err != nil {
		return nil, err
	}
	m := &migration{prometheus: promPath, out: out}
	if opts.httpSD != "" {
		u, err := url.Parse(opts.httpSD)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("--http-sd: %q is not a URL such as http://custom-sd:9099", opts.httpSD)
		}
		m.httpSD = strings.TrimRight(opts.httpSD, "/")
	}
	return m, nil
}

// consulScrapesOf parses a Prometheus configuration (read from name) and
// finds its scrape jobs with consul_sd_configs; none is an error.
func consulScrapesOf(src []byte, name string) (*promFile, []*consulScrape, error) {
	pf, err := parsePrometheus(src)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	scrapes, err := pf.consulScrapes()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(scrapes) == 0 {
		hint := ""
		if lookup(pf.root, "scrape_config_files") != nil {
			hint = " (scrape_config_files are not read: migrate each of them too)"
		}
		return nil, nil, fmt.Errorf("%s: no scrape job uses consul_sd_configs%s", name, hint)
	}
	return pf, scrapes, nil
}

// migratedEntry is one consul_sd_configs entry turned into a job.
type migratedEntry struct {
	job             *config.Job
	agent           *migratedAgent
	refreshInterval string
}

// convert turns every consul_sd_configs entry of scrapes (read from name)
// into a job of one configuration file, with its agent shared by the jobs
// that reach Consul alike. rel relocates relative paths.
func (m *migration) convert(name string, scrapes []*consulScrape, rel func(string) string) (config.File, []migratedEntry, error) {
	var f config.File
	agents := map[string]*migratedAgent{}
	taken := map[string]bool{}
	var all []migratedEntry
	for _, s := range scrapes {
		ms := migratedScrape{name: s.name}
		for i, entry := range s.entries {
			c, err := convertConsulSD(entry, m.pathChanger(s.name, i, rel))
			if err != nil {
				return f, nil, fmt.Errorf("%s: scrape job %q: consul_sd_configs[%d]: %w", name, s.name, i, err)
			}
			for _, n := range c.notes {
				m.notes = append(m.notes, migrateNote{s.name, i, n})
			}
			jobName := s.name
			if len(s.entries) > 1 {
				jobName = fmt.Sprintf("%s-%d", s.name, i)
			}
			c.job.Name = unique(sanitizeName(jobName), taken)
			c.job.Output.File = migrateSDDir + "/" + c.job.Name + ".json"
			a, err := m.agentFor(c.agent, agents)
			if err != nil {
				return f, nil, err
			}
			all = append(all, migratedEntry{c.job, a, c.refreshInterval})
			f.Jobs = append(f.Jobs, c.job)
			target := c.job.Output.File
			if m.httpSD != "" {
				target = m.httpSD + "/targets/" + c.job.Name
			}
			ms.jobs = append(ms.jobs, migratedJob{name: c.job.Name, target: target})
		}
		m.scrapes = append(m.scrapes, ms)
	}
	if len(f.Jobs) == 0 {
		return f, nil, fmt.Errorf("%s: every consul_sd_configs is empty", name)
	}
	m.nameAgents(&f)
	if m.named {
		k := 0
		for i := range m.scrapes {
			for j := range m.scrapes[i].jobs {
				all[k].job.Consul = all[k].agent.name
				m.scrapes[i].jobs[j].consul = all[k].agent.name
				k++
			}
		}
	}
	return f, all, nil
}

// pathChanger relocates the paths of consul_sd_configs entry i of scrape
// job scrape with rel, and notes each path it changes.
func (m *migration) pathChanger(scrape string, i int, rel func(string) string) func(string) string {
	return func(p string) string {
		to := rel(p)
		if to != p {
			m.configPaths = append(m.configPaths, pathChange{fmt.Sprintf("scrape job %s, consul_sd_configs[%d]", scrape, i), p, to})
		}
		return to
	}
}

// agentFor returns the agent of agents that reaches Consul as a does, or
// adds a as a new one.
func (m *migration) agentFor(a *config.Consul, agents map[string]*migratedAgent) (*migratedAgent, error) {
	key, err := yaml.Marshal(a)
	if err != nil {
		return nil, err
	}
	if known, ok := agents[string(key)]; ok {
		return known, nil
	}
	na := &migratedAgent{agent: a, key: string(key)}
	agents[string(key)] = na
	m.agents = append(m.agents, na)
	m.secrets = m.secrets || a.Token != "" || a.Password != ""
	return na, nil
}

// origins names every consul_sd_configs entry of scrapes, in order.
func origins(scrapes []*consulScrape) []string {
	var names []string
	for _, s := range scrapes {
		for i := range s.entries {
			names = append(names, fmt.Sprintf("scrape job %s, consul_sd_configs[%d]", s.name, i))
		}
	}
	return names
}

// rewritePrometheus rewrites the Prometheus configuration: relative paths
// first (the new file_sd paths are relative to the output directory
// already), then each consul_sd_configs becomes file_sd_configs on the
// jobs' files, or http_sd_configs on their endpoints.
func (m *migration) rewritePrometheus(pf *promFile, scrapes []*consulScrape, all []migratedEntry, rel func(string) string) ([]byte, error) {
	skip := map[*yaml.Node]bool{}
	for _, s := range scrapes {
		skip[s.value] = true
	}
	m.promPaths = pf.rewritePaths(rel, skip)
	k := 0
	for i, s := range scrapes {
		var entries []*yaml.Node
		key := "file_sd_configs"
		comment := "custom-sd: see " + migrateConfigName
		if m.httpSD == "" {
			var files []*yaml.Node
			for range s.entries {
				files = append(files, strNode(all[k].job.Output.File))
				k++
			}
			if len(files) > 0 {
				entries = append(entries, mapNode("files", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: files}))
			}
		} else {
			key = "http_sd_configs"
			for range s.entries {
				e := mapNode("url", strNode(m.scrapes[i].jobs[len(entries)].target))
				if ri := all[k].refreshInterval; ri != "" {
					e.Content = append(e.Content, strNode("refresh_interval"), strNode(ri))
				}
				entries = append(entries, e)
				k++
			}
		}
		if err := pf.replaceConsulSD(s, key, comment, entries); err != nil {
			return nil, err
		}
	}
	if m.httpSD != "" {
		for i := range m.notes {
			if m.notes[i].field == "refresh_interval" {
				m.notes[i].reason = "not needed for Consul (custom-sd uses blocking queries); put on the http_sd_configs entry, as how often Prometheus asks custom-sd"
			}
		}
	}
	prom, reformatted, err := pf.render()
	if err != nil {
		return nil, err
	}
	m.reformatted = reformatted
	return prom, nil
}

// warn notes what the migration leaves to the user.
func (m *migration) warn(pf *promFile) {
	if n := pf.alertmanagerConsulSD(); n > 0 {
		m.warnings = append(m.warnings, fmt.Sprintf("alerting.alertmanagers: %d use consul_sd_configs, left as they are (Prometheus keeps asking Consul for them)", n))
	}
	if m.httpSD != "" {
		m.warnings = append(m.warnings, "http_sd_configs: Prometheus asks custom-sd every refresh_interval (60s unless set), where consul_sd saw changes at once; file_sd (without --http-sd) picks a change up at once")
	}
	if lookup(pf.root, "scrape_config_files") != nil {
		m.warnings = append(m.warnings, "scrape_config_files: not read; migrate any of them that use consul_sd_configs too")
	}
}

// nameAgents puts the agents into f: consul when there is one, else
// consuls named after their server's host.
func (m *migration) nameAgents(f *config.File) {
	if len(m.agents) == 1 {
		f.Consul = m.agents[0].agent
		return
	}
	m.named = true
	f.Consuls = map[string]*config.Consul{}
	taken := map[string]bool{}
	for _, a := range m.agents {
		a.name = unique(sanitizeName(serverHost(a.agent.Server)), taken)
		f.Consuls[a.name] = a.agent
	}
}

// serverHost is the host of a consul_sd server address.
func serverHost(server string) string {
	host := server
	if _, rest, ok := strings.Cut(server, "://"); ok {
		host = rest
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.Trim(host, "[]")
}

// marshalConfig writes custom-sd.yml, with a comment on each job naming
// where in the Prometheus configuration it comes from.
func marshalConfig(f *config.File, from string, origins []string) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(f); err != nil {
		return nil, err
	}
	n.HeadComment = fmt.Sprintf("custom-sd configuration written by `custom-sd migrate` from %s.\nRelative paths are relative to this file's directory.", from)
	if jobs := lookup(&n, "jobs"); jobs != nil {
		for i, j := range jobs.Content {
			if i < len(origins) {
				j.HeadComment = "From " + origins[i] + "."
			}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, err := config.Parse(b.Bytes()); err != nil {
		return nil, fmt.Errorf("internal error: the written %s does not parse: %w", migrateConfigName, err)
	}
	return b.Bytes(), nil
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func mapNode(key string, value *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{strNode(key), value}}
}

// write writes both files into m.out, each through a temporary file, and
// creates m.out/sd for custom-sd's output. Nothing is written if either
// file exists and force is false, or if either is the input itself.
func (m *migration) write(cfg, prom []byte, promMode fs.FileMode, force bool) error {
	cfgMode := fs.FileMode(0o644)
	if m.secrets {
		cfgMode = 0o600 // it holds a token or a password
	}
	files := []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{filepath.Join(m.out, migrateConfigName), cfg, cfgMode},
		{filepath.Join(m.out, migratePrometheusName), prom, promMode},
	}
	in, err := os.Stat(m.prometheus)
	if err != nil {
		return err
	}
	for _, f := range files {
		fi, err := os.Stat(f.path)
		switch {
		case err == nil && os.SameFile(fi, in):
			return fmt.Errorf("%s is the input: choose another --out", f.path)
		case err == nil && !force:
			return fmt.Errorf("%s exists: remove it or use --force", f.path)
		case err == nil && fi.IsDir():
			return fmt.Errorf("%s is a directory", f.path)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(m.out, migrateSDDir), 0o755); err != nil {
		return err
	}
	var temps []string
	defer func() {
		for _, t := range temps {
			_ = os.Remove(t) // gone already after a rename
		}
	}()
	for _, f := range files {
		t, err := writeTemp(f.path, f.data, f.mode)
		if err != nil {
			return err
		}
		temps = append(temps, t)
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.path); err != nil {
			return err
		}
	}
	return nil
}

// writeTemp writes data to a new temporary file beside path and returns
// its name.
func writeTemp(path string, data []byte, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), mode)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// summary prints what migrate did.
func (m *migration) summary(w io.Writer) {
	cfgPath := filepath.Join(m.out, migrateConfigName)
	promPath := filepath.Join(m.out, migratePrometheusName)
	jobs := 0
	for _, s := range m.scrapes {
		jobs += len(s.jobs)
	}
	fmt.Fprintf(w, "Migrated %s:\n  wrote %s (%d jobs", m.prometheus, cfgPath, jobs)
	if m.named {
		fmt.Fprintf(w, ", %d consuls", len(m.agents))
	}
	fmt.Fprintf(w, ")\n  wrote %s\n", promPath)
	if m.secrets {
		fmt.Fprintf(w, "  %s holds a token or password: written with mode 0600\n", migrateConfigName)
	}
	m.summaryJobs(w)
	m.summaryConsul(w)
	m.summaryPaths(w)
	if m.reformatted != "" {
		m.warnings = append(m.warnings, fmt.Sprintf("%s was re-encoded from the YAML tree (blank lines dropped, indentation normalised): %s", migratePrometheusName, m.reformatted))
	}
	if len(m.warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, s := range m.warnings {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	fmt.Fprintf(w, "\nNext:\n  %s --config.file=%s\n", name, cfgPath)
	if m.httpSD == "" {
		fmt.Fprintf(w, "  prometheus --config.file=%s   (custom-sd writes %s/*.json beside it)\n", promPath, filepath.Join(m.out, migrateSDDir))
	} else {
		fmt.Fprintf(w, "  prometheus --config.file=%s   (it asks custom-sd at %s/targets/<job>)\n", promPath, m.httpSD)
	}
}

// summaryJobs prints a table of the scrape jobs and the jobs made of them.
func (m *migration) summaryJobs(w io.Writer) {
	fmt.Fprintln(w, "\nScrape jobs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SCRAPE JOB\tCUSTOM-SD JOB\t")
	if m.named {
		fmt.Fprintf(tw, "CONSUL\t")
	}
	if m.httpSD != "" {
		fmt.Fprintln(tw, "HTTP SD URL")
	} else {
		fmt.Fprintln(tw, "FILE (in "+m.out+")")
	}
	for _, s := range m.scrapes {
		for i, j := range s.jobs {
			scrape := s.name
			if i > 0 {
				scrape = ""
			}
			fmt.Fprintf(tw, "  %s\t%s\t", scrape, j.name)
			if m.named {
				fmt.Fprintf(tw, "%s\t", j.consul)
			}
			fmt.Fprintln(tw, j.target)
		}
		if len(s.jobs) == 0 {
			fmt.Fprintf(tw, "  %s\t(none: consul_sd_configs was empty)\t\n", s.name)
		}
	}
	_ = tw.Flush()
}

// summaryConsul prints how custom-sd reaches Consul, and what it does not
// carry over.
func (m *migration) summaryConsul(w io.Writer) {
	fmt.Fprintln(w, "\nConsul:")
	for _, a := range m.agents {
		label := "consul"
		if m.named {
			label = "consuls." + a.name
		}
		fmt.Fprintf(w, "  %s: %s\n", label, describeAgent(a.agent))
	}
	fmt.Fprintln(w, "  (settings Prometheus left unset fall back to the consul CLI's CONSUL_HTTP_* variables in custom-sd's environment)")

	fmt.Fprintln(w, "\nNot carried over:")
	if len(m.notes) == 0 {
		fmt.Fprintln(w, "  nothing: every consul_sd_configs field has its place in custom-sd.yml")
	}
	for _, n := range m.notes {
		fmt.Fprintf(w, "  scrape job %s, consul_sd_configs[%d].%s: %s\n", n.scrape, n.entry, n.field, n.reason)
	}
}

// summaryPaths prints the relative paths migrate rewrote.
func (m *migration) summaryPaths(w io.Writer) {
	fmt.Fprintln(w, "\nPaths:")
	if filepath.Dir(m.prometheus) == m.out {
		fmt.Fprintln(w, "  the output directory is the configuration's own: relative paths keep their meaning")
	} else {
		fmt.Fprintf(w, "  relative paths now resolve against %s; they were rewritten to name the same files (absolute ones are unchanged):\n", m.out)
		if len(m.configPaths)+len(m.promPaths) == 0 {
			fmt.Fprintln(w, "  (there were none)")
		}
		for _, p := range m.configPaths {
			fmt.Fprintf(w, "  %s: %s, %s -> %s\n", migrateConfigName, p.where, p.from, p.to)
		}
		for _, p := range m.promPaths {
			fmt.Fprintf(w, "  %s: %s, %s -> %s\n", migratePrometheusName, p.where, p.from, p.to)
		}
	}
}

// describeAgent says how an agent is reached, without secrets.
func describeAgent(a *config.Consul) string {
	parts := []string{a.Server}
	if a.Scheme != "" {
		parts = append(parts, "scheme "+a.Scheme)
	}
	if a.PathPrefix != "" {
		parts = append(parts, "path prefix "+a.PathPrefix)
	}
	switch {
	case a.Token != "":
		parts = append(parts, "token")
	case a.TokenFile != "":
		parts = append(parts, "token file "+a.TokenFile)
	}
	if a.Username != "" {
		parts = append(parts, "basic auth as "+a.Username)
	}
	if a.TLSConfig != nil {
		parts = append(parts, "TLS settings")
	}
	return strings.Join(parts, ", ")
}
