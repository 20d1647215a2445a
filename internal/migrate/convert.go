package migrate

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// converter turns the consul_sd_configs entries of a Prometheus
// configuration into custom-sd's jobs and agents.
type converter struct {
	opts    Options
	rel     func(string) string // relocates a relative path to Out
	scrapes []*scrapeJobs
	agents  []*agent
	byKey   map[string]*agent // agents by their settings
	names   *nameSet          // job names
	secrets []SecretFile
	report  *Report
}

// scrapeJobs is a scrape job with consul_sd_configs and the jobs made of
// its entries.
type scrapeJobs struct {
	src  *consulScrape
	jobs []*job
}

// job is one consul_sd_configs entry turned into a custom-sd job.
type job struct {
	scrape          *scrapeJobs
	entry           int
	job             *config.Job
	agent           *agent
	refreshInterval string // the entry's, if it has one
}

// agent is how custom-sd reaches one Consul, shared by the jobs whose
// entries reach it alike.
type agent struct {
	name    string // its key in consuls; empty with a single agent
	consul  *config.Consul
	secrets agentSecrets // placed in files once the agent is named
}

func newConverter(opts Options, report *Report) *converter {
	return &converter{
		opts:   opts,
		rel:    relocate(opts.Dir, opts.Out),
		byKey:  map[string]*agent{},
		names:  newNameSet(),
		report: report,
	}
}

// convert turns every consul_sd_configs entry of scrapes into a job.
func (c *converter) convert(scrapes []*consulScrape) error {
	for _, s := range scrapes {
		sj := &scrapeJobs{src: s}
		c.scrapes = append(c.scrapes, sj)
		for i, entry := range s.entries {
			j, err := c.entry(sj, i, entry, len(s.entries) > 1)
			if err != nil {
				return fmt.Errorf("scrape job %q: consul_sd_configs[%d]: %w", s.name, i, err)
			}
			sj.jobs = append(sj.jobs, j)
		}
	}
	if len(c.agents) == 0 {
		return errors.New("every consul_sd_configs is empty")
	}
	c.nameAgents()
	return nil
}

// entry converts entry i of a scrape job's consul_sd_configs; numbered
// says the scrape job has several, so the job's name carries the index.
func (c *converter) entry(sj *scrapeJobs, i int, entry *yaml.Node, numbered bool) (*job, error) {
	sd, err := convertConsulSD(entry, c.pathChanger(sj.src.name, i))
	if err != nil {
		return nil, errors.New(entrySecrets(entry).redact(err.Error()))
	}
	for _, n := range sd.notes {
		if n.field == "refresh_interval" && c.opts.HTTPSD != "" {
			n.reason = "not needed for Consul (custom-sd uses blocking queries); put on the http_sd_configs entry, as how often Prometheus asks custom-sd"
		}
		c.report.NotCarried = append(c.report.NotCarried, Note{sj.src.name, i, n.field, n.reason})
	}
	name := sj.src.name
	if numbered {
		name = fmt.Sprintf("%s-%d", name, i)
	}
	var long string
	sd.job.Name, long = c.names.take(sanitizeName(name))
	if long != "" {
		c.report.Renamed = append(c.report.Renamed, Rename{sj.src.name, i, long, sd.job.Name})
	}
	sd.job.Output.File = SDDir + "/" + sd.job.Name + ".json"
	a, err := c.agentFor(sd.agent, sd.secrets)
	if err != nil {
		return nil, err
	}
	return &job{scrape: sj, entry: i, job: sd.job, agent: a, refreshInterval: sd.refreshInterval}, nil
}

// pathChanger relocates the paths of consul_sd_configs entry i of scrape
// job scrape, and reports each path it changes.
func (c *converter) pathChanger(scrape string, i int) func(string) string {
	return func(p string) string {
		to := c.rel(p)
		if to != p {
			where := fmt.Sprintf("scrape job %s, consul_sd_configs[%d]", scrape, i)
			c.report.Paths = append(c.report.Paths, PathChange{ConfigFile, where, p, to})
		}
		return to
	}
}

// agentFor returns the agent that reaches Consul as a with secrets does,
// adding it as a new one if there is none.
func (c *converter) agentFor(a *config.Consul, secrets agentSecrets) (*agent, error) {
	settings, err := yaml.Marshal(a)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s\n%q", settings, secrets)
	if known, ok := c.byKey[key]; ok {
		return known, nil
	}
	na := &agent{consul: a, secrets: secrets}
	c.byKey[key] = na
	c.agents = append(c.agents, na)
	return na, nil
}

// nameAgents names the agents after their server's host when there are
// several, tells each job which it reads, and moves each agent's inline
// secrets into files named after it (consul.token with a single agent).
func (c *converter) nameAgents() {
	if len(c.agents) == 1 {
		c.secrets = c.agents[0].secrets.place("consul", c.agents[0].consul)
		return
	}
	names := newNameSet()
	for _, a := range c.agents {
		a.name, _ = names.take(sanitizeName(serverHost(a.consul.Server)))
		c.secrets = append(c.secrets, a.secrets.place(a.name, a.consul)...)
	}
	for _, s := range c.scrapes {
		for _, j := range s.jobs {
			j.job.Consul = j.agent.name
		}
	}
}

// file is custom-sd's configuration: a consul section when there is one
// agent, else consuls.
func (c *converter) file() config.File {
	var f config.File
	if len(c.agents) == 1 {
		f.Consul = c.agents[0].consul
	} else {
		f.Consuls = map[string]*config.Consul{}
		for _, a := range c.agents {
			f.Consuls[a.name] = a.consul
		}
	}
	for _, s := range c.scrapes {
		for _, j := range s.jobs {
			f.Jobs = append(f.Jobs, j.job)
		}
	}
	return f
}

// target is what Prometheus reads for a job: its file, or its HTTP SD URL.
func (c *converter) target(j *job) string {
	if c.opts.HTTPSD != "" {
		return c.opts.HTTPSD + "/targets/" + j.job.Name
	}
	return j.job.Output.File
}

// fillReport puts the jobs and the agents into the report.
func (c *converter) fillReport() {
	for _, s := range c.scrapes {
		rs := Scrape{Name: s.src.name}
		for _, j := range s.jobs {
			rs.Jobs = append(rs.Jobs, Job{Name: j.job.Name, Consul: j.agent.name, Target: c.target(j)})
		}
		c.report.Scrapes = append(c.report.Scrapes, rs)
	}
	for _, a := range c.agents {
		c.report.Agents = append(c.report.Agents, Agent{Name: a.name, Description: a.describe()})
	}
}
