// Package migrate converts a Prometheus configuration that finds its
// targets through consul_sd_configs into custom-sd's configuration, and a
// copy of the Prometheus configuration that reads custom-sd's output
// (file_sd_configs, or http_sd_configs) instead, with everything else as it
// was. Convert writes nothing: the caller reads the input and writes the
// files (Convert's check of the result, internal/config's, only looks
// whether a job's output file would be a directory).
package migrate

import (
	"fmt"
	"strings"

	"github.com/custom-sd/custom-sd/internal/config"
)

// The files Convert's result is written to, in the output directory.
const (
	// ConfigFile is custom-sd's configuration.
	ConfigFile = "custom-sd.yml"
	// PrometheusFile is the rewritten Prometheus configuration.
	PrometheusFile = "prometheus.yml"
	// SDDir is the directory custom-sd writes the jobs' file_sd files to.
	SDDir = "sd"
)

// Options says where the input comes from and where the result goes.
type Options struct {
	// Input names the Prometheus configuration in errors, comments and the
	// summary: its path, as given.
	Input string
	// Dir is the directory Prometheus resolves the configuration's relative
	// paths against (the input file's own); absolute.
	Dir string
	// Out is the directory the result is written to; absolute. Relative
	// paths in both files are rewritten to resolve against it.
	Out string
	// HTTPSD, when set, is custom-sd's base URL (http or https): Prometheus then asks <HTTPSD>/targets/<job> over HTTP SD
	// instead of reading files.
	HTTPSD string
}

// Result is a converted configuration.
type Result struct {
	// File is custom-sd's configuration, and Config the same as written to
	// ConfigFile, with a comment on each job naming its origin. Neither
	// holds a secret: File names Secrets instead.
	File   config.File
	Config []byte
	// Secrets are the credentials and PEM blocks the Prometheus
	// configuration held inline, to be written with mode 0600.
	Secrets []SecretFile
	// Prometheus is the Prometheus configuration to write to
	// PrometheusFile.
	Prometheus []byte
	// Report says what was carried over and what was not.
	Report Report
}

// Convert converts the Prometheus configuration src. Every
// consul_sd_configs entry of a scrape job becomes a custom-sd job; input
// Prometheus would refuse, or that has none, is an error of one line.
func Convert(src []byte, opts Options) (*Result, error) {
	r, err := convert(src, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Input, err)
	}
	return r, nil
}

func convert(src []byte, opts Options) (*Result, error) {
	opts.HTTPSD = strings.TrimRight(opts.HTTPSD, "/")
	pf, err := parsePrometheus(src)
	if err != nil {
		return nil, err
	}
	scrapes, err := pf.consulScrapes()
	if err != nil {
		return nil, err
	}
	if len(scrapes) == 0 {
		hint := ""
		if lookup(pf.root, "scrape_config_files") != nil {
			hint = " (scrape_config_files are not read: migrate each of them too)"
		}
		return nil, fmt.Errorf("no scrape job uses consul_sd_configs%s", hint)
	}
	res := &Result{Report: Report{Input: opts.Input, Dir: opts.Dir, Out: opts.Out, HTTPSD: opts.HTTPSD}}
	c := newConverter(opts, &res.Report)
	if err := c.convert(scrapes); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	res.File, res.Secrets = c.file(), c.secrets
	if res.Config, err = marshalConfig(&res.File, opts.Input, c.origins()); err != nil {
		return nil, err
	}
	if res.Prometheus, err = c.rewritePrometheus(pf); err != nil {
		return nil, err
	}
	c.fillReport()
	res.Report.Warnings = append(res.Report.Warnings, warnings(pf, opts)...)
	return res, nil
}

// warnings are what the migration leaves to the operator.
func warnings(pf *promFile, opts Options) []string {
	var w []string
	if n := pf.alertmanagerConsulSD(); n > 0 {
		w = append(w, fmt.Sprintf("alerting.alertmanagers: %d use consul_sd_configs, left as they are (Prometheus keeps asking Consul for them)", n))
	}
	if opts.HTTPSD != "" {
		w = append(w, "http_sd_configs: Prometheus asks custom-sd every refresh_interval (60s unless set), where consul_sd saw changes at once; file_sd (without --http-sd) picks a change up at once")
	}
	if lookup(pf.root, "scrape_config_files") != nil {
		w = append(w, "scrape_config_files: not read; migrate any of them that use consul_sd_configs too")
	}
	return w
}
