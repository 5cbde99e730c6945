// The nftables ruleset knpd owns: one inet table with stable base chains, and sets of the
// endpoints some plugin's interest names. Updates are set-element deltas in one transaction;
// rules change only when the shape changes (a plugin's protocol/port filter), and base chains
// are never deleted while running — deleting one unregisters its hook and the kernel drops
// every packet waiting in the queue (kube-network-policies #402).
//
//   table inet kube-network-policies
//     chain postrouting  filter hook postrouting priority srcnat - 5
//       ct label <bit> accept                                   (accepted flows skip userspace:
//                                                                nearly every packet, one rule)
//       meta mark & M != 0 meta mark set mark & ~M ct label set <bit> accept
//                                                               (a reader's accept verdict is
//                                                                NF_REPEAT with M: label, go on)
//       jump classify
//     chain input        filter hook input priority srcnat + 1  (the same three rules)
//     chain classify
//       iif/oif lo accept
//       ct direction reply accept                               (replies need no verdict)
//       icmpv6 type 133-137 accept                              (neighbour discovery never queued)
//       per filter group g, direction, end, family:
//         ip saddr @g0-egress-local-v4 [meta l4proto P [th dport @g0-ports]] queue …
//
// Plugins whose interests share a protocol/port filter share one group of sets, so the usual
// pipeline (all filters "everything") has one group and eight address sets.
//
// THREAD: control thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"
#include "dataplane/nft.hpp"
#include "plugins/instance.hpp"

namespace knp::host {

enum class QueueMethod { Expression, Compat };
std::string_view queueMethodName(QueueMethod m) noexcept;

struct RulesetOptions {
    std::string table = "kube-network-policies";
    uint16_t queueNum = 100;
    uint16_t queueCount = 1;
    bool bypass = true;  // fail-open: accept when no reader is bound
    uint32_t acceptLabelBit = 100;
    // The packet-mark bit a reader sets on an accept verdict (NF_REPEAT) so that the base
    // chain, run once more, labels the connection. A mark, not a conntrack attribute in the
    // verdict: that needs CONFIG_NETFILTER_NETLINK_GLUE_CT, which not every kernel has (the CI
    // kernel does not); the mark works everywhere, and the chain clears it again at once. The
    // bit must be knpd's alone on the node: a packet that reaches the chain carrying it is
    // taken for one a reader accepted (knpd --accept-mark picks another). Pods cannot set it:
    // the mark is cleared when a packet crosses into the node's network namespace.
    uint32_t acceptMark = 0x10000000;
};

// Which way the kernel can queue: the nftables `queue` expression, or the xtables NFQUEUE
// target through nft compat. Probed with a batch that is always rolled back, so it leaves
// nothing behind.
Result<QueueMethod> detectQueueMethod();

// A protocol/port filter shared by the interests of one group.
struct InterestFilter {
    uint32_t protocols = 0;       // KNP_PROTO_BIT_*; 0 = all
    std::vector<KeyRange> ports;  // merged; empty = all
    bool operator==(const InterestFilter&) const = default;
};

// The state the kernel should have.
struct DesiredRuleset {
    std::vector<InterestFilter> groups;
    std::map<std::string, std::pair<NftSetSpec, std::vector<KeyRange>>> sets;  // merged ranges
};

// Unions every snapshot's interest; `localPods` backs KNP_INTEREST_LOCAL_PODS.
DesiredRuleset desiredRuleset(const std::vector<const InterestSet*>& interests, const std::vector<knp_addr>& localPods);

class Ruleset {
public:
    Ruleset(RulesetOptions options, QueueMethod method) : options_(std::move(options)), method_(method) {}

    // First call: installs or takes over the table in one transaction (flushing and refilling
    // chains and sets, never deleting a base chain). Later calls: element deltas only, or a
    // full refill when the groups changed.
    Status apply(const DesiredRuleset& desired);
    // Deletes the table (fail-closed shutdown).
    Status remove();

    QueueMethod method() const noexcept { return method_; }
    const RulesetOptions& options() const noexcept { return options_; }
    // Transactions sent, and how many were deltas (for metrics and tests).
    uint64_t transactions() const noexcept { return transactions_; }
    uint64_t fullLoads() const noexcept { return fullLoads_; }

private:
    void addRules(NftTransaction& tx, const DesiredRuleset& d) const;

    RulesetOptions options_;
    QueueMethod method_;
    bool installed_ = false;
    DesiredRuleset current_;
    uint64_t transactions_ = 0;
    uint64_t fullLoads_ = 0;
};

}  // namespace knp::host
