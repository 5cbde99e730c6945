#include "dataplane/ruleset.hpp"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.hpp"

namespace knp::host {

namespace {

constexpr const char* kClassify = "classify";
// nf_tables priorities: NF_IP_PRI_NAT_SRC = 100. Postrouting after DNAT and before SNAT, so a
// Service connection is seen with the backend pod as destination and the client pod as source.
constexpr int32_t kPostroutingPriority = 100 - 5;
constexpr int32_t kInputPriority = 100 + 1;
constexpr uint8_t kCtDirReply = 1;  // IP_CT_DIR_REPLY

enum class End { Local, Remote };
struct Slot {
    Direction dir;
    End end;
    bool v6;
};
constexpr Slot kSlots[] = {
    {Direction::Egress, End::Local, false},  {Direction::Egress, End::Remote, false},
    {Direction::Ingress, End::Local, false}, {Direction::Ingress, End::Remote, false},
    {Direction::Egress, End::Local, true},   {Direction::Egress, End::Remote, true},
    {Direction::Ingress, End::Local, true},  {Direction::Ingress, End::Remote, true},
};

std::string setName(size_t group, const Slot& s) {
    return fmt::format("g{}-{}-{}-{}", group, s.dir == Direction::Egress ? "egress" : "ingress",
                       s.end == End::Local ? "local" : "remote", s.v6 ? "v6" : "v4");
}
std::string portSetName(size_t group) { return fmt::format("g{}-ports", group); }

// The packet's source address holds the local end for egress and the remote end for ingress.
bool matchesSource(const Slot& s) { return (s.dir == Direction::Egress) == (s.end == End::Local); }

KeyRange cidrRange(const knp_cidr& c, bool v6) {
    KeyRange r;
    const uint8_t* a = v6 ? c.addr.bytes : c.addr.bytes + 12;
    unsigned len = v6 ? 16 : 4;
    unsigned prefix = c.prefix_len;
    for (unsigned i = 0; i < len; ++i) {
        unsigned keep = prefix >= (i + 1) * 8 ? 8 : (prefix > i * 8 ? prefix - i * 8 : 0);
        uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
        r.first[i] = a[i] & mask;
        r.last[i] = static_cast<uint8_t>(a[i] | ~mask);
    }
    return r;
}

KeyRange portRange(const knp_port_range& p) {
    KeyRange r;
    r.first[0] = static_cast<uint8_t>(p.first >> 8);
    r.first[1] = static_cast<uint8_t>(p.first);
    r.last[0] = static_cast<uint8_t>(p.last >> 8);
    r.last[1] = static_cast<uint8_t>(p.last);
    return r;
}

}  // namespace

std::string_view queueMethodName(QueueMethod m) noexcept {
    return m == QueueMethod::Expression ? "nftables queue expression" : "xtables NFQUEUE target (nft compat)";
}

Result<QueueMethod> detectQueueMethod() {
    // A throwaway table whose batch ends with a message that always fails (deleting a table
    // that does not exist): the kernel rolls everything back, and tells us whether the queue
    // rule itself was acceptable.
    std::string probe = fmt::format("knp-probe-{}", ::getpid());
    auto tryMethod = [&](QueueMethod m) -> Result<bool> {
        NftTransaction tx(NFPROTO_INET, probe);
        tx.addTable();
        tx.addChain("c");
        NftRuleBuilder rb(NFPROTO_INET, probe, "c");
        if (m == QueueMethod::Expression) {
            rb.queueExpr(0, 1, true);
        } else {
            rb.queueCompat(0, 1, true);
        }
        tx.addRule(rb.release(), "probe queue rule");
        tx.deleteTable();  // the table exists within the batch: delete it ...
        tx.deleteTable();  // ... and once more, which fails and rolls the whole batch back
        Status s = tx.commit();
        if (s) return makeError("nftables probe unexpectedly committed");
        // Only the refusal of the last message (the second delete) means the rule was taken;
        // anything else refused earlier (nf_tables itself missing, say) is an error, not a yes.
        const std::string& why = s.error().message;
        if (why.find("probe queue rule") != std::string::npos) return false;
        if (why.find("delete table") != std::string::npos) return true;
        return std::move(s).error();
    };
    auto expr = tryMethod(QueueMethod::Expression);
    if (!expr) return std::move(expr).error();
    if (*expr) return QueueMethod::Expression;
    auto compat = tryMethod(QueueMethod::Compat);
    if (!compat) return std::move(compat).error();
    if (*compat) return QueueMethod::Compat;
    return makeError(
        "nftables: the kernel accepts neither the queue expression nor the NFQUEUE target "
        "(CONFIG_NFT_QUEUE or CONFIG_NETFILTER_XT_TARGET_NFQUEUE with nft_compat)");
}

DesiredRuleset desiredRuleset(const std::vector<const InterestSet*>& interests,
                              const std::vector<knp_addr>& localPods) {
    DesiredRuleset d;
    auto groupOf = [&](const DirectionInterestSet& di) {
        InterestFilter f;
        f.protocols = di.protocols;
        std::vector<KeyRange> ports;
        for (const auto& p : di.dstPorts) ports.push_back(portRange(p));
        f.ports = mergeRanges(std::move(ports), 2);
        auto it = std::find(d.groups.begin(), d.groups.end(), f);
        if (it != d.groups.end()) return static_cast<size_t>(it - d.groups.begin());
        d.groups.push_back(std::move(f));
        return d.groups.size() - 1;
    };
    std::map<std::string, std::vector<KeyRange>> raw;
    auto addCidr = [&](size_t g, Direction dir, End end, const knp_cidr& c) {
        bool v6 = c.addr.family == KNP_FAMILY_IPV6;
        raw[setName(g, Slot{dir, end, v6})].push_back(cidrRange(c, v6));
    };
    auto allOf = [](uint8_t family) {
        knp_cidr c{};
        c.addr.family = family;
        if (family == KNP_FAMILY_IPV4) c.addr.bytes[10] = c.addr.bytes[11] = 0xff;
        return c;
    };
    for (const InterestSet* is : interests) {
        for (Direction dir : {Direction::Egress, Direction::Ingress}) {
            const DirectionInterestSet& di = dir == Direction::Egress ? is->egress : is->ingress;
            if (di.empty()) continue;
            size_t g = groupOf(di);
            for (const auto& c : di.local) addCidr(g, dir, End::Local, c);
            for (const auto& c : di.remote) addCidr(g, dir, End::Remote, c);
            if (di.divertAll) {
                addCidr(g, dir, End::Local, allOf(KNP_FAMILY_IPV4));
                addCidr(g, dir, End::Local, allOf(KNP_FAMILY_IPV6));
            }
            if (di.localPods) {
                for (const auto& ip : localPods) {
                    knp_cidr c{};
                    c.addr = ip;
                    c.prefix_len = ip.family == KNP_FAMILY_IPV4 ? 32 : 128;
                    addCidr(g, dir, End::Local, c);
                }
            }
        }
    }
    for (size_t g = 0; g < d.groups.size(); ++g) {
        for (const Slot& s : kSlots) {
            std::string name = setName(g, s);
            NftSetSpec spec{name, s.v6 ? kNftTypeIpv6 : kNftTypeIpv4, s.v6 ? 16u : 4u};
            d.sets[name] = {spec, mergeRanges(std::move(raw[name]), spec.keyLen)};
        }
        if (!d.groups[g].ports.empty()) {
            std::string name = portSetName(g);
            d.sets[name] = {NftSetSpec{name, kNftTypeInetService, 2}, d.groups[g].ports};
        }
    }
    return d;
}

void Ruleset::addRules(NftTransaction& tx, const DesiredRuleset& d) const {
    const std::string& table = options_.table;
    auto rule = [&](const char* chain) { return NftRuleBuilder(NFPROTO_INET, table, chain); };
    auto queue = [&](NftRuleBuilder& rb) {
        if (method_ == QueueMethod::Expression) {
            rb.queueExpr(options_.queueNum, options_.queueCount, options_.bypass);
        } else {
            rb.queueCompat(options_.queueNum, options_.queueCount, options_.bypass);
        }
    };

    // Connections a worker accepted carry the label: the kernel handles the rest of their
    // packets. This rule is the first of each base chain because nearly every packet is one of
    // these (all of a connection's packets but its first, in both directions), and it tests
    // the label alone, without `ct state established,related`: the label can only be on a
    // connection whose opening packet was accepted, so the state adds nothing but a second
    // conntrack lookup on every packet. (It also spares userspace the retransmitted SYN and the
    // unanswered UDP datagrams of a connection already accepted, which are still NEW.)
    uint32_t zero = 0;
    std::array<uint8_t, 16> label{};
    label[options_.acceptLabelBit / 8] = static_cast<uint8_t>(1u << (options_.acceptLabelBit % 8));
    std::array<uint8_t, 16> zeros{};
    uint32_t mark = options_.acceptMark, notMark = ~options_.acceptMark;
    for (const char* base : {"postrouting", "input"}) {
        tx.addRule(rule(base)
                       .ctToReg(NFT_CT_LABELS)
                       .bitwiseAnd(label.data(), label.size())
                       .cmp(NFT_CMP_NEQ, zeros.data(), zeros.size())
                       .verdict(NF_ACCEPT)
                       .release(),
                   fmt::format("{}: ct label accept", base));
        // A worker's accept comes back as NF_REPEAT with the mark bit set: the packet runs this
        // chain once more and this rule clears the bit, labels its connection and lets it go on.
        // (A second base chain after this one would do the same without the repeat, but every
        // packet would pay for one more hook.) Setting a label on a packet without a conntrack
        // entry (notrack) does nothing and does not end the rule: such a packet is accepted
        // here too, never queued again.
        tx.addRule(rule(base)
                       .metaToReg(NFT_META_MARK)
                       .bitwiseAnd(&mark, sizeof mark)
                       .cmp(NFT_CMP_NEQ, &zero, sizeof zero)
                       .metaToReg(NFT_META_MARK)
                       .bitwiseAnd(&notMark, sizeof notMark)
                       .metaFromReg(NFT_META_MARK)
                       .ctLabelSet(options_.acceptLabelBit)
                       .verdict(NF_ACCEPT)
                       .release(),
                   fmt::format("{}: meta mark & {:#x} clear, ct label set, accept", base, mark));
        tx.addRule(rule(base).jump(kClassify).release(), fmt::format("{}: jump {}", base, kClassify));
    }

    // Loopback is the node talking to itself.
    char lo[16] = "lo";
    tx.addRule(rule(kClassify).metaToReg(NFT_META_IIFNAME).cmp(NFT_CMP_EQ, lo, sizeof lo).verdict(NF_ACCEPT).release(),
               "iifname lo accept");
    tx.addRule(rule(kClassify).metaToReg(NFT_META_OIFNAME).cmp(NFT_CMP_EQ, lo, sizeof lo).verdict(NF_ACCEPT).release(),
               "oifname lo accept");
    // A reply belongs to a connection whose opening packet was (or will be) judged.
    uint8_t reply = kCtDirReply;
    tx.addRule(rule(kClassify).ctToReg(NFT_CT_DIRECTION).cmp(NFT_CMP_EQ, &reply, 1).verdict(NF_ACCEPT).release(),
               "ct direction reply accept");
    // IPv6 neighbour discovery (router/neighbour solicitation and advertisement, redirect).
    uint8_t icmpv6 = KNP_PROTO_ICMPV6, ndFirst = 133, ndLast = 137;
    tx.addRule(rule(kClassify)
                   .metaToReg(NFT_META_L4PROTO)
                   .cmp(NFT_CMP_EQ, &icmpv6, 1)
                   .payloadToReg(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)
                   .cmp(NFT_CMP_GTE, &ndFirst, 1)
                   .cmp(NFT_CMP_LTE, &ndLast, 1)
                   .verdict(NF_ACCEPT)
                   .release(),
               "icmpv6 neighbour discovery accept");

    for (size_t g = 0; g < d.groups.size(); ++g) {
        const InterestFilter& f = d.groups[g];
        for (const Slot& s : kSlots) {
            std::string set = setName(g, s);
            uint8_t nfproto = s.v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
            uint32_t offset = s.v6 ? (matchesSource(s) ? 8 : 24) : (matchesSource(s) ? 12 : 16);
            auto addrMatch = [&]() {
                NftRuleBuilder rb = rule(kClassify);
                rb.metaToReg(NFT_META_NFPROTO).cmp(NFT_CMP_EQ, &nfproto, 1);
                rb.payloadToReg(NFT_PAYLOAD_NETWORK_HEADER, offset, s.v6 ? 16 : 4).lookup(set);
                return rb;
            };
            if (f.protocols == 0 && f.ports.empty()) {
                auto rb = addrMatch();
                queue(rb);
                tx.addRule(rb.release(), "queue @" + set);
                continue;
            }
            // Port-carrying protocols, each with the port set when there is one.
            uint32_t mask = f.protocols == 0 ? ~0u : f.protocols;
            const std::pair<uint32_t, uint8_t> portProtos[] = {{KNP_PROTO_BIT_TCP, KNP_PROTO_TCP},
                                                               {KNP_PROTO_BIT_UDP, KNP_PROTO_UDP},
                                                               {KNP_PROTO_BIT_SCTP, KNP_PROTO_SCTP}};
            for (auto [bit, proto] : portProtos) {
                if ((mask & bit) == 0) continue;
                auto rb = addrMatch();
                rb.metaToReg(NFT_META_L4PROTO).cmp(NFT_CMP_EQ, &proto, 1);
                if (!f.ports.empty()) rb.payloadToReg(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2).lookup(portSetName(g));
                queue(rb);
                tx.addRule(rb.release(), fmt::format("queue @{} proto {}", set, proto));
            }
            if (mask & KNP_PROTO_BIT_ICMP) {
                uint8_t icmp = s.v6 ? KNP_PROTO_ICMPV6 : KNP_PROTO_ICMP;
                auto rb = addrMatch();
                rb.metaToReg(NFT_META_L4PROTO).cmp(NFT_CMP_EQ, &icmp, 1);
                queue(rb);
                tx.addRule(rb.release(), fmt::format("queue @{} icmp", set));
            }
            if (mask & KNP_PROTO_BIT_OTHER) {
                auto rb = addrMatch();
                rb.metaToReg(NFT_META_L4PROTO);
                for (uint8_t p : {KNP_PROTO_TCP, KNP_PROTO_UDP, KNP_PROTO_SCTP, KNP_PROTO_ICMP, KNP_PROTO_ICMPV6})
                    rb.cmp(NFT_CMP_NEQ, &p, 1);
                queue(rb);
                tx.addRule(rb.release(), fmt::format("queue @{} other protocols", set));
            }
        }
    }
}

Status Ruleset::apply(const DesiredRuleset& desired) {
    const std::string& table = options_.table;
    NftTransaction tx(NFPROTO_INET, table);
    bool full = !installed_ || desired.groups != current_.groups;
    if (full) {
        // Take over (or build) the table in one transaction: base chains are created if absent
        // and otherwise only flushed and refilled, so their hooks never go away.
        tx.addTable();
        tx.addBaseChain("postrouting", NF_INET_POST_ROUTING, kPostroutingPriority);
        tx.addBaseChain("input", NF_INET_LOCAL_IN, kInputPriority);
        tx.addChain(kClassify);
        for (const char* c : {"postrouting", "input", kClassify}) tx.flushChain(c);
        for (const auto& [name, set] : current_.sets)
            if (!desired.sets.count(name)) tx.deleteSet(name);
        for (const auto& [name, set] : desired.sets) {
            tx.addIntervalSet(set.first);
            tx.flushSet(name);
            if (!set.second.empty()) tx.addElements(set.first, set.second);
        }
        addRules(tx, desired);
    } else {
        for (const auto& [name, set] : desired.sets) {
            const auto& before = current_.sets.at(name).second;
            std::vector<KeyRange> gone, added;
            std::set_difference(before.begin(), before.end(), set.second.begin(), set.second.end(),
                                std::back_inserter(gone));
            std::set_difference(set.second.begin(), set.second.end(), before.begin(), before.end(),
                                std::back_inserter(added));
            // Deletions first: a new range may overlap one that goes in the same transaction.
            if (!gone.empty()) tx.deleteElements(set.first, gone);
            if (!added.empty()) tx.addElements(set.first, added);
        }
        if (tx.size() == 0) return okStatus();
    }
    if (Status s = tx.commit(); !s) return s;
    ++transactions_;
    if (full) ++fullLoads_;
    installed_ = true;
    current_ = desired;
    return okStatus();
}

Status Ruleset::remove() {
    NftTransaction tx(NFPROTO_INET, options_.table);
    tx.deleteTable();
    Status s = tx.commit();
    if (s) installed_ = false;
    return s;
}

}  // namespace knp::host
