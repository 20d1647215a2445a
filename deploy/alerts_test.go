package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testprom"
)

// runbookURL is where every alert's runbook_url points, up to the anchor.
const runbookURL = "https://github.com/custom-sd/custom-sd/blob/main/docs/runbook.md"

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTests is the part of a promtool test file the tests read.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func TestPromtoolChecksAlertRules(t *testing.T) {
	t.Parallel()
	out, err := testprom.Promtool(t, "check", "rules", "--lint=all", "--lint-fatal", "alerts.yml")
	require.NoError(t, err, out)
}

// promtool runs every case of alerts_test.yml: each alert where it fires
// and where it must stay silent.
func TestPromtoolRunsAlertUnitTests(t *testing.T) {
	t.Parallel()
	out, err := testprom.Promtool(t, "test", "rules", "alerts_test.yml")
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS", out)
}

// Every alert has a severity, a summary, a description and a runbook
// section of its own, and unit tests where it fires and where it does not.
func TestAlertsAreDocumentedAndTested(t *testing.T) {
	t.Parallel()
	var rules ruleFile
	readYAML(t, "alerts.yml", &rules)
	require.Len(t, rules.Groups, 1)
	require.Equal(t, "custom-sd", rules.Groups[0].Name)

	runbook, err := os.ReadFile("../docs/runbook.md")
	require.NoError(t, err)
	var sections []string
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(runbook), -1) {
		sections = append(sections, m[1])
	}

	var tests ruleTests
	readYAML(t, "alerts_test.yml", &tests)
	require.Equal(t, []string{"alerts.yml"}, tests.RuleFiles)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}

	var alerts []string
	for _, r := range rules.Groups[0].Rules {
		require.NotEmpty(t, r.Alert, "only alerting rules: %s", r.Expr)
		require.NotContains(t, alerts, r.Alert, "one rule per alert")
		alerts = append(alerts, r.Alert)
		require.True(t, strings.HasPrefix(r.Alert, "CustomSD"), r.Alert)
		require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
		require.NotEmpty(t, r.For, "%s: a `for` against flapping", r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		require.NotEmpty(t, r.Annotations["description"], r.Alert)
		require.Equal(t, runbookURL+"#"+strings.ToLower(r.Alert), r.Annotations["runbook_url"], r.Alert)
		require.Len(t, r.Annotations, 3, r.Alert)
		require.True(t, fires[r.Alert], "%s: no unit test where it fires", r.Alert)
		require.True(t, silent[r.Alert], "%s: no unit test where it stays silent", r.Alert)
	}
	require.Equal(t, alerts, sections, "docs/runbook.md has one section per alert, named as the alert, in the same order")
	for name := range fires {
		require.Contains(t, alerts, name, "alerts_test.yml tests an alert that does not exist")
	}
	for name := range silent {
		require.Contains(t, alerts, name, "alerts_test.yml tests an alert that does not exist")
	}
}
