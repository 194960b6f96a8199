package fleetlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// cutTable is the nftables table that cuts node i off.
func (c *Cluster) cutTable(i int) string {
	return fmt.Sprintf("mciv_fleetlab_%d_%s", os.Getpid(), c.Nodes[i].Name)
}

// Cut cuts node i off the network without stopping it, as a pulled cable
// would: an nftables table drops every packet its process sends (meta
// skuid: the node runs as a uid of its own) and every packet to or from
// its client and cluster ports. Its connections stay open but silent.
// It needs root and nft; Heal undoes it.
func (c *Cluster) Cut(ctx context.Context, i int) error {
	nd := c.Nodes[i]
	if nd.uid == 0 {
		return errors.New("fleetlab: cutting a node needs root (its own uid)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("fleetlab: cutting a node needs nft: %w", err)
	}
	ports := fmt.Sprintf("{ %d, %d }", nd.Port, nd.cluster)
	rules := fmt.Sprintf(`table inet %s {
	chain output {
		type filter hook output priority 0; policy accept;
		meta skuid %d drop
		tcp dport %s drop
		tcp sport %s drop
	}
}
`, c.cutTable(i), nd.uid, ports, ports)
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fleetlab: cutting %s: nft: %w: %s", nd.Name, err, out)
	}
	return nil
}

// Heal undoes Cut of node i; it is a no-op for a node not cut.
func (c *Cluster) Heal(ctx context.Context, i int) error {
	if c.Nodes[i].uid == 0 {
		return nil
	}
	table := c.cutTable(i)
	if exec.CommandContext(ctx, "nft", "list", "table", "inet", table).Run() != nil {
		return nil // not cut
	}
	if out, err := exec.CommandContext(ctx, "nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
		return fmt.Errorf("fleetlab: healing %s: nft: %w: %s", c.Nodes[i].Name, err, out)
	}
	return nil
}
