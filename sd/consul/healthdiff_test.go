package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestHealthDiff(t *testing.T) {
	instance := func(node, id string, checks ...*api.HealthCheck) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Node: node}, Service: &api.AgentService{ID: id, Service: "web"}, Checks: checks}
	}
	svcCheck := func(node, id, status string) *api.HealthCheck {
		return &api.HealthCheck{Node: node, CheckID: "check:" + id, ServiceID: id, ServiceName: "web", Status: status}
	}
	nodeCheck := func(node, status string) *api.HealthCheck {
		return &api.HealthCheck{Node: node, CheckID: "serfHealth", Status: status}
	}
	tests := []struct {
		name    string
		read    []*api.ServiceEntry
		other   map[checkKey]string // the list's checks of unread instances, as of its last ring
		list    api.HealthChecks
		differs bool
	}{
		{"all passing, nothing listed", []*api.ServiceEntry{instance("n1", "a", svcCheck("n1", "a", api.HealthPassing))}, nil, nil, false},
		{"an instance turned critical", []*api.ServiceEntry{instance("n1", "a", svcCheck("n1", "a", api.HealthPassing))}, nil,
			api.HealthChecks{svcCheck("n1", "a", api.HealthCritical)}, true},
		{"the read already saw it critical", []*api.ServiceEntry{instance("n1", "a", svcCheck("n1", "a", api.HealthCritical))}, nil,
			api.HealthChecks{svcCheck("n1", "a", api.HealthCritical)}, false},
		{"critical turned warning", []*api.ServiceEntry{instance("n1", "a", svcCheck("n1", "a", api.HealthCritical))}, nil,
			api.HealthChecks{svcCheck("n1", "a", api.HealthWarning)}, true},
		{"it passes again", []*api.ServiceEntry{instance("n1", "a", svcCheck("n1", "a", api.HealthCritical))}, nil, nil, true},
		{"the node of an instance failed", []*api.ServiceEntry{instance("n1", "a")}, nil,
			api.HealthChecks{nodeCheck("n1", api.HealthCritical)}, true},
		{"another node failed", []*api.ServiceEntry{instance("n1", "a")}, nil,
			api.HealthChecks{nodeCheck("n2", api.HealthCritical)}, false},
		{"an unread instance turned critical", []*api.ServiceEntry{instance("n1", "a")}, nil,
			api.HealthChecks{svcCheck("n2", "b", api.HealthCritical)}, true},
		{"an unread instance stayed critical", []*api.ServiceEntry{instance("n1", "a")}, map[checkKey]string{{"n2", "check:b"}: api.HealthCritical},
			api.HealthChecks{svcCheck("n2", "b", api.HealthCritical)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := healthStateOf(tc.read, tc.other, func(s string) string { return s })
			l := indexNonPassing(tc.list)
			require.Equal(t, tc.differs, l.differs("web", &h))
		})
	}
}
