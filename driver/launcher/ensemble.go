package launcher

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// host is where every node listens: loopback only, also for containers on the host network.
const host = "127.0.0.1"

// member is one node's ports; ID is ZooKeeper's server id (index + 1).
type member struct {
	ID           int
	ClientPort   int
	QuorumPort   int
	ElectionPort int
}

func (m member) clientAddr() string { return net.JoinHostPort(host, strconv.Itoa(m.ClientPort)) }

// ensemble is the static layout shared by every mode that starts nodes.
type ensemble struct {
	Members  []member
	TickTime time.Duration
}

// Limits in ticks. Tests use short ticks (200-500ms), so these are more generous than
// ZooKeeper's samples (5 and 2) to keep a loaded 2-core machine from failing the handshake.
const (
	initLimit = 10
	syncLimit = 5
)

// newEnsemble picks 3 free loopback ports per node. The listeners are all held until every port
// is known, so the ports differ from each other.
func newEnsemble(nodes int, tick time.Duration) (ensemble, error) {
	ports, err := freePorts(3 * nodes)
	if err != nil {
		return ensemble{}, err
	}
	e := ensemble{TickTime: tick}
	for i := range nodes {
		e.Members = append(e.Members, member{
			ID:           i + 1,
			ClientPort:   ports[3*i],
			QuorumPort:   ports[3*i+1],
			ElectionPort: ports[3*i+2],
		})
	}
	return e, nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("launcher: pick a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// servers returns the client addresses, "127.0.0.1:port" per node.
func (e ensemble) servers() []string {
	out := make([]string, len(e.Members))
	for i, m := range e.Members {
		out[i] = m.clientAddr()
	}
	return out
}

// serverLines returns the server.N lines, dynamic-config style with the client address, which
// ZooKeeper checks against clientPort/clientPortAddress.
func (e ensemble) serverLines() []string {
	out := make([]string, len(e.Members))
	for i, m := range e.Members {
		out[i] = fmt.Sprintf("server.%d=%s:%d:%d;%s", m.ID, host, m.QuorumPort, m.ElectionPort, m.clientAddr())
	}
	return out
}

func (e ensemble) tickMillis() int64 { return e.TickTime.Milliseconds() }

// zooCfg is node i's zoo.cfg for local mode.
func (e ensemble) zooCfg(i int, dataDir string) string {
	m := e.Members[i]
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\n", e.tickMillis())
	fmt.Fprintf(&b, "initLimit=%d\nsyncLimit=%d\n", initLimit, syncLimit)
	fmt.Fprintf(&b, "dataDir=%s\n", dataDir)
	fmt.Fprintf(&b, "clientPort=%d\nclientPortAddress=%s\n", m.ClientPort, host)
	b.WriteString("maxClientCnxns=0\n")
	b.WriteString("standaloneEnabled=true\n")
	b.WriteString("admin.enableServer=false\n")
	b.WriteString("4lw.commands.whitelist=*\n")
	for _, l := range e.serverLines() {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// dockerEnv is node i's environment for an image with the official zookeeper image's contract.
func (e ensemble) dockerEnv(i int) []string {
	m := e.Members[i]
	return []string{
		fmt.Sprintf("ZOO_MY_ID=%d", m.ID),
		"ZOO_SERVERS=" + strings.Join(e.serverLines(), " "),
		fmt.Sprintf("ZOO_TICK_TIME=%d", e.tickMillis()),
		fmt.Sprintf("ZOO_INIT_LIMIT=%d", initLimit),
		fmt.Sprintf("ZOO_SYNC_LIMIT=%d", syncLimit),
		"ZOO_MAX_CLIENT_CNXNS=0",
		"ZOO_STANDALONE_ENABLED=true",
		"ZOO_ADMINSERVER_ENABLED=false",
		"ZOO_4LW_COMMANDS_WHITELIST=*",
		fmt.Sprintf("ZOO_CFG_EXTRA=clientPort=%d clientPortAddress=%s", m.ClientPort, host),
		"JVMFLAGS=" + strings.Join(jvmFlags, " "),
	}
}

// jvmFlags keep each node small: three JVMs share a 2-core test machine with everything else.
var jvmFlags = []string{"-Xmx256m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true"}
