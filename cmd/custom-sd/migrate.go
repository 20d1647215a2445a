package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/internal/migrate"
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
	res, err := migrateFiles(opts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	res.Summary(stdout)
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
	app.Flag("out", "Directory to write "+migrate.ConfigFile+" and "+migrate.PrometheusFile+" into; created if missing.").Required().StringVar(&opts.out)
	app.Flag("http-sd", "custom-sd's base URL, e.g. http://custom-sd:9099: Prometheus asks <url>/targets/<job> over HTTP SD instead of reading files.").StringVar(&opts.httpSD)
	app.Flag("force", "Overwrite "+migrate.ConfigFile+" and "+migrate.PrometheusFile+" in the output directory.").BoolVar(&opts.force)
	_, err := app.Parse(args)
	if exited >= 0 {
		return opts, exited, true
	}
	if err == nil {
		err = checkHTTPSD(&opts.httpSD)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: migrate: %s\n", name, oneLine(err))
		return opts, 2, true
	}
	return opts, 0, false
}

// checkHTTPSD checks --http-sd and trims its trailing slashes.
func checkHTTPSD(httpSD *string) error {
	if *httpSD == "" {
		return nil
	}
	u, err := url.Parse(*httpSD)
	if err != nil {
		return errors.New("--http-sd: not a URL such as http://custom-sd:9099")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("--http-sd: %q is not a URL such as http://custom-sd:9099", u.Redacted())
	}
	if u.User != nil {
		return errors.New("--http-sd: a user name or password would be written into prometheus.yml; give http_sd_configs basic_auth by hand instead")
	}
	*httpSD = strings.TrimRight(*httpSD, "/")
	return nil
}

// migrateFiles reads the Prometheus configuration, converts it and writes
// the result into the output directory.
func migrateFiles(opts migrateOptions) (*migrate.Result, error) {
	in, err := filepath.Abs(opts.prometheus)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(opts.out)
	if err != nil {
		return nil, err
	}
	src, err := os.ReadFile(in)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(in)
	if err != nil {
		return nil, err
	}
	res, err := migrate.Convert(src, migrate.Options{Input: opts.prometheus, Dir: filepath.Dir(in), Out: out, HTTPSD: opts.httpSD})
	if err != nil {
		return nil, err
	}
	files := []outFile{
		{filepath.Join(out, migrate.ConfigFile), res.Config, 0o644}, // it holds no secret
		{filepath.Join(out, migrate.PrometheusFile), res.Prometheus, fi.Mode().Perm()},
	}
	for _, f := range res.Secrets {
		files = append(files, outFile{filepath.Join(out, f.Path), f.Data, 0o600})
	}
	if err := writeOut(in, out, files, opts.force); err != nil {
		return nil, err
	}
	if _, err := config.Load(filepath.Join(out, migrate.ConfigFile)); err != nil {
		res.Report.Warnings = append(res.Report.Warnings, fmt.Sprintf("%s does not load here: %s (a file it names may exist only where custom-sd runs)", migrate.ConfigFile, oneLine(err)))
	}
	return res, nil
}

// outFile is a file migrate writes.
type outFile struct {
	path string
	data []byte
	mode fs.FileMode
}

// writeOut writes the files, each through a temporary file, and creates
// out/sd for custom-sd's output and the directories of the files (0700
// for those of files only their owner may read). Nothing is written if a
// file exists and force is false, or if one is the input itself.
func writeOut(input, out string, files []outFile, force bool) error {
	in, err := os.Stat(input)
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
	if err := os.MkdirAll(filepath.Join(out, migrate.SDDir), 0o755); err != nil {
		return err
	}
	for _, f := range files {
		dirMode := fs.FileMode(0o755)
		if f.mode&0o077 == 0 {
			dirMode = 0o700
		}
		if err := os.MkdirAll(filepath.Dir(f.path), dirMode); err != nil {
			return err
		}
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
