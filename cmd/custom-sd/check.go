package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/alecthomas/kingpin/v2"

	"github.com/custom-sd/custom-sd/internal/config"
)

// runCheck runs `custom-sd check config FILE`, as `promtool check config`
// is for Prometheus: it loads the configuration as a start or a reload
// would — the files it names read, the output directories written to —
// without contacting Consul, and prints what it would run. It returns 0
// for a valid configuration, 1 for an invalid one, 2 for a bad command
// line.
func runCheck(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(name+" check", "Checks a configuration without running it.")
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	if len(args) == 0 {
		fmt.Fprintf(stderr, "%s: error: check: expected command config (custom-sd check config FILE)\n", name)
		return 2
	}
	exited := -1
	app.Terminate(func(c int) { exited = c })
	cmd := app.Command("config", "Checks a configuration file: its syntax, its values, the files it reads and the directories it writes to. Contacts no Consul agent.")
	file := cmd.Arg("file", "The configuration file.").Required().String()
	_, err := app.Parse(args)
	if exited >= 0 {
		return exited
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: check: %s\n", name, oneLine(err))
		return 2
	}
	fmt.Fprintf(stdout, "Checking %s\n", *file)
	cfg, err := config.Load(*file)
	if err == nil {
		err = cfg.CheckPaths(config.Input{Path: *file, What: "the configuration file"})
	}
	if err != nil {
		fmt.Fprintf(stdout, "  FAILED: %s\n", oneLine(err))
		return 1
	}
	fmt.Fprintf(stdout, "  SUCCESS: %s is a valid custom-sd configuration\n\n", *file)
	describeConfig(stdout, cfg)
	return 0
}

// describeConfig prints what a configuration runs: its agents and its
// jobs. Secrets are named by their files, never shown.
func describeConfig(w io.Writer, cfg *config.Config) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUL\tSERVER\tCREDENTIALS")
	for _, name := range sortedNames(cfg.Consuls) {
		c := cfg.Consuls[name].Config
		server := c.API.Address
		if c.API.Scheme != "" && !strings.Contains(server, "://") {
			server = c.API.Scheme + "://" + server
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, server, credentials(cfg.Consuls[name]))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "JOB\tCONSUL\tSELECTS\tWRITES")
	for _, j := range cfg.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", j.Name, j.Consul, selects(j), strings.Join(j.Paths(), ", "))
	}
	_ = tw.Flush()
}

// credentials says how an agent is reached, naming files, never secrets.
func credentials(w *config.Watch) string {
	c := w.Config
	var parts []string
	switch {
	case c.TokenFile != "":
		parts = append(parts, "token from "+c.TokenFile)
	case c.API.Token != "":
		parts = append(parts, "token <secret>")
	}
	if c.API.HttpAuth != nil && c.API.HttpAuth.Username != "" {
		switch {
		case c.PasswordFile != "":
			parts = append(parts, fmt.Sprintf("user %s, password from %s", c.API.HttpAuth.Username, c.PasswordFile))
		default:
			parts = append(parts, fmt.Sprintf("user %s, password <secret>", c.API.HttpAuth.Username))
		}
	}
	t := c.API.TLSConfig
	if t.CAFile != "" {
		parts = append(parts, "CA "+t.CAFile)
	}
	if t.CertFile != "" {
		parts = append(parts, "certificate "+t.CertFile)
	}
	if t.InsecureSkipVerify {
		parts = append(parts, "TLS not verified")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// selects summarises a job's selection.
func selects(j *config.JobSpec) string {
	sel := j.Job.Selection
	var parts []string
	if len(sel.Services) > 0 {
		parts = append(parts, "services "+strings.Join(sel.Services, ","))
	} else {
		parts = append(parts, "every service")
	}
	if len(sel.Tags) > 0 {
		parts = append(parts, "tags "+strings.Join(sel.Tags, ","))
	}
	if sel.Filter != "" {
		parts = append(parts, "filter")
	}
	if sel.HealthFilter != "" {
		parts = append(parts, "health filter")
	}
	for _, re := range sel.Exclude {
		parts = append(parts, "not "+strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$"))
	}
	switch {
	case j.Job.AllDatacenters:
		parts = append(parts, "every datacenter")
	case len(j.Job.Datacenters) > 0:
		parts = append(parts, "datacenters "+strings.Join(j.Job.Datacenters, ","))
	}
	return strings.Join(parts, "; ")
}

func sortedNames(m map[string]*config.Watch) []string { return slices.Sorted(maps.Keys(m)) }
