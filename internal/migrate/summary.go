package migrate

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/custom-sd/custom-sd/internal/config"
)

// Summary prints what Convert did, for the operator: the files, the jobs,
// how custom-sd reaches Consul, what was not carried over, the paths
// rewritten, the warnings and what to run next.
func (r *Result) Summary(w io.Writer) {
	rep := &r.Report
	cfgPath := filepath.Join(rep.Out, ConfigFile)
	promPath := filepath.Join(rep.Out, PrometheusFile)
	jobs := 0
	for _, s := range rep.Scrapes {
		jobs += len(s.Jobs)
	}
	fmt.Fprintf(w, "Migrated %s:\n  wrote %s (%d jobs", rep.Input, cfgPath, jobs)
	if rep.named() {
		fmt.Fprintf(w, ", %d consuls", len(rep.Agents))
	}
	fmt.Fprintf(w, ")\n  wrote %s\n", promPath)
	if len(r.Secrets) > 0 {
		fmt.Fprintf(w, "  wrote %d files into %s with mode 0600: the credentials and PEM blocks %s held inline, which %s names (keep them readable by the user custom-sd runs as, and by no one else)\n",
			len(r.Secrets), filepath.Join(rep.Out, SecretsDir), rep.Input, ConfigFile)
	}
	rep.summaryJobs(w)
	rep.summaryRenamed(w)
	rep.summaryConsul(w)
	rep.summaryPaths(w)
	if len(rep.Warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, s := range rep.Warnings {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	fmt.Fprintf(w, "\nNext:\n  custom-sd check config %s   (validates it where custom-sd runs, with the files it names)\n", cfgPath)
	fmt.Fprintf(w, "  custom-sd --config.file=%s\n", cfgPath)
	if rep.HTTPSD == "" {
		fmt.Fprintf(w, "  prometheus --config.file=%s   (custom-sd writes %s/*.json beside it)\n", promPath, filepath.Join(rep.Out, SDDir))
	} else {
		fmt.Fprintf(w, "  prometheus --config.file=%s   (it asks custom-sd at %s/targets/<job>)\n", promPath, rep.HTTPSD)
	}
}

// named says the agents are named (consuls), not a single consul section.
func (r *Report) named() bool { return len(r.Agents) > 1 }

// summaryJobs prints a table of the scrape jobs and the jobs made of them.
func (r *Report) summaryJobs(w io.Writer) {
	fmt.Fprintln(w, "\nScrape jobs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  SCRAPE JOB\tCUSTOM-SD JOB\t")
	if r.named() {
		fmt.Fprintf(tw, "CONSUL\t")
	}
	if r.HTTPSD != "" {
		fmt.Fprintln(tw, "HTTP SD URL")
	} else {
		fmt.Fprintln(tw, "FILE (in "+r.Out+")")
	}
	for _, s := range r.Scrapes {
		for i, j := range s.Jobs {
			scrape := s.Name
			if i > 0 {
				scrape = ""
			}
			fmt.Fprintf(tw, "  %s\t%s\t", scrape, j.Name)
			if r.named() {
				fmt.Fprintf(tw, "%s\t", j.Consul)
			}
			fmt.Fprintln(tw, j.Target)
		}
		if len(s.Jobs) == 0 {
			fmt.Fprintf(tw, "  %s\t(none: consul_sd_configs was empty)\t\n", s.Name)
		}
	}
	_ = tw.Flush()
}

// maxShownName is how much of a long name the summary shows.
const maxShownName = 240

// summaryRenamed prints the job names that were shortened.
func (r *Report) summaryRenamed(w io.Writer) {
	if len(r.Renamed) == 0 {
		return
	}
	fmt.Fprintf(w, "\nShortened to fit a job name's %d bytes (a prefix and a hash of the whole name):\n", config.MaxJobNameLen)
	for _, n := range r.Renamed {
		from := n.From
		if len(from) > maxShownName {
			from = fmt.Sprintf("%s... (%d bytes)", from[:maxShownName], len(n.From))
		}
		fmt.Fprintf(w, "  scrape job %.*s, consul_sd_configs[%d]: %s -> %s\n", maxShownName, n.Scrape, n.Entry, from, n.To)
	}
}

// summaryConsul prints how custom-sd reaches Consul, and what it does not
// carry over.
func (r *Report) summaryConsul(w io.Writer) {
	fmt.Fprintln(w, "\nConsul:")
	for _, a := range r.Agents {
		label := "consul"
		if r.named() {
			label = "consuls." + a.Name
		}
		fmt.Fprintf(w, "  %s: %s\n", label, a.Description)
	}
	fmt.Fprintln(w, "  (settings Prometheus left unset fall back to the consul CLI's CONSUL_HTTP_* variables in custom-sd's environment)")

	fmt.Fprintln(w, "\nNot carried over:")
	if len(r.NotCarried) == 0 {
		fmt.Fprintln(w, "  nothing: every consul_sd_configs field has its place in custom-sd.yml")
	}
	for _, n := range r.NotCarried {
		fmt.Fprintf(w, "  scrape job %s, consul_sd_configs[%d].%s: %s\n", n.Scrape, n.Entry, n.Field, n.Reason)
	}
}

// summaryPaths prints the relative paths rewritten.
func (r *Report) summaryPaths(w io.Writer) {
	fmt.Fprintln(w, "\nPaths:")
	if filepath.Clean(r.Dir) == filepath.Clean(r.Out) {
		fmt.Fprintln(w, "  the output directory is the configuration's own: relative paths keep their meaning")
		return
	}
	fmt.Fprintf(w, "  relative paths now resolve against %s; they were rewritten to name the same files (absolute ones are unchanged):\n", r.Out)
	if len(r.Paths) == 0 {
		fmt.Fprintln(w, "  (there were none)")
	}
	for _, p := range r.Paths {
		fmt.Fprintf(w, "  %s: %s, %s -> %s\n", p.File, p.Where, p.From, p.To)
	}
}

// describe says how the agent is reached, with secrets as <secret>.
func (a *agent) describe() string {
	c := a.consul
	parts := []string{c.Server}
	if c.Scheme != "" {
		parts = append(parts, "scheme "+c.Scheme)
	}
	if c.PathPrefix != "" {
		parts = append(parts, "path prefix "+c.PathPrefix)
	}
	switch {
	case a.secrets.token != "":
		parts = append(parts, fmt.Sprintf("ACL token %s in %s", secretMark, c.TokenFile))
	case c.TokenFile != "":
		parts = append(parts, "ACL token file "+c.TokenFile)
	}
	switch {
	case a.secrets.password != "":
		parts = append(parts, fmt.Sprintf("basic auth as %s, password %s in %s", c.Username, secretMark, c.PasswordFile))
	case c.PasswordFile != "":
		parts = append(parts, fmt.Sprintf("basic auth as %s, password file %s", c.Username, c.PasswordFile))
	case c.Username != "":
		parts = append(parts, fmt.Sprintf("basic auth as %s, no password", c.Username))
	}
	if c.TLSConfig != nil {
		parts = append(parts, "TLS settings")
	}
	if a.secrets.key != "" {
		parts = append(parts, fmt.Sprintf("client key %s in %s", secretMark, c.TLSConfig.KeyFile))
	}
	return strings.Join(parts, ", ")
}
