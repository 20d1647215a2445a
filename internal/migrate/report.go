package migrate

// Report says what Convert carried over into custom-sd's configuration and
// what it did not, and why. It holds no secret.
type Report struct {
	// Input is the Prometheus configuration, as Options named it.
	Input string
	// Dir is the input's directory, and Out the output directory.
	Dir, Out string
	// HTTPSD is custom-sd's base URL when Prometheus reads it over HTTP SD.
	HTTPSD string
	// Scrapes are the scrape jobs that had consul_sd_configs, in order.
	Scrapes []Scrape
	// Agents say how custom-sd reaches Consul: one, or several named.
	Agents []Agent
	// NotCarried are the consul_sd_configs fields custom-sd.yml does not
	// hold as they are.
	NotCarried []Note
	// Renamed are the job names shortened to fit config.MaxJobNameLen.
	Renamed []Rename
	// Paths are the relative paths rewritten to resolve against Out.
	Paths []PathChange
	// Warnings are what the operator should know or do by hand.
	Warnings []string
}

// Scrape is a scrape job of the Prometheus configuration and the
// custom-sd jobs made of its consul_sd_configs entries, one each.
type Scrape struct {
	Name string
	Jobs []Job
}

// Job is a custom-sd job.
type Job struct {
	Name string
	// Consul names its agent when there are several.
	Consul string
	// Target is what Prometheus reads: the file (relative to Out) or the
	// HTTP SD URL.
	Target string
}

// Agent is how custom-sd reaches one Consul agent.
type Agent struct {
	// Name is its key under consuls; empty for the single consul section.
	Name string
	// Description says how it is reached, with no secret in it.
	Description string
}

// Note is a field of a consul_sd_configs entry that custom-sd.yml does
// not hold as it is, and why.
type Note struct {
	Scrape string // the scrape job
	Entry  int    // the index in its consul_sd_configs
	Field  string // as the Prometheus configuration spells it: tls_config.ca
	Reason string
}

// Rename is a job name shortened to fit config.MaxJobNameLen.
type Rename struct {
	Scrape   string // the scrape job
	Entry    int    // the index in its consul_sd_configs
	From, To string // the name sanitized, and shortened
}
