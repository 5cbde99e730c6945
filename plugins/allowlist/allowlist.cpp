// allowlist — one fixed verdict for traffic whose remote peer is in a list of CIDRs.
//
// SPDX-License-Identifier: Apache-2.0
//
// The SDK's showcase: strict config parsing that names the bad key by JSON pointer, one
// immutable snapshot built from the config, an interest derived from the rules, and an
// evaluation that only reads (no allocation, no locks).
//
// The remote peer is the packet's destination for egress (what a pod may reach) and its source
// for ingress (who may reach a pod). Rules are tried in order; the first match decides; no
// match is NEXT, so later pipeline instances decide.

#include <knp/plugin.hpp>
#include <knp/types.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <bitset>
#include <array>
#include <charconv>
#include <cstring>
#include <span>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace json = boost::json;

// Every user-controlled size has a limit (house style); these are far above sane configs.
constexpr size_t kMaxRules = 1024;
constexpr size_t kMaxListLength = 1024;  // cidrs, protocols or ports of one rule

constexpr uint32_t kPortProtocolBits = KNP_PROTO_BIT_TCP | KNP_PROTO_BIT_UDP | KNP_PROTO_BIT_SCTP;

constexpr const char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "allowlist",
  "type": "object",
  "additionalProperties": false,
  "required": ["rules"],
  "properties": {
    "action": {"enum": ["accept", "deny"], "default": "accept"},
    "rules": {
      "type": "array",
      "maxItems": 1024,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["cidrs"],
        "properties": {
          "cidrs": {"type": "array", "minItems": 1, "maxItems": 1024,
                    "items": {"type": "string", "description": "10.0.0.0/8, fd00::/64 or a bare address; no host bits"}},
          "direction": {"enum": ["ingress", "egress", "both"], "default": "both"},
          "protocols": {"type": "array", "minItems": 1, "maxItems": 1024,
                        "items": {"type": "string", "description": "TCP, UDP, SCTP, ICMP or ICMPv6, any case"}},
          "ports": {"type": "array", "minItems": 1, "maxItems": 1024,
                    "items": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 65535},
                                        {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"}]}},
          "name": {"type": "string", "minLength": 1}
        }
      }
    }
  }
})";

struct Rule {
    std::string id;  // the config's "name", or "#<index>"
    bool ingress = true;
    bool egress = true;
    std::vector<knp_cidr> cidrs;
    std::vector<std::string> reasons;   // one per cidr, built now: evaluation only hands out views
    std::bitset<256> protocols;         // by IP protocol number
    uint32_t protocolBits = 0;          // the same set as KNP_PROTO_BIT_*, 0 = all (interest)
    std::vector<knp_port_range> ports;  // empty = every port

    bool portAllowed(const knp::PacketView& p) const noexcept {
        if (ports.empty()) return true;
        if (!p.hasPorts()) return false;
        return std::any_of(ports.begin(), ports.end(),
                           [&](const knp_port_range& r) { return p.dstPort() >= r.first && p.dstPort() <= r.last; });
    }
};

// Which rules' CIDRs contain an address, precomputed so a decision does not scan every rule.
// The address space (IPv4 in its IPv4-mapped form, so one 16-byte order serves both families)
// is cut at every CIDR boundary into elementary ranges; each range lists, in rule order, the
// (rule, cidr) pairs covering it. A lookup is one binary search, then a walk over only the
// rules that can match at all. Nested CIDRs make lists longer, so the index has a size cap and
// the snapshot falls back to scanning when a config would exceed it.
class PeerIndex {
public:
    struct Hit {
        uint32_t rule;
        uint32_t cidr;
    };
    using Key = std::array<uint8_t, 16>;

    // False when the index would exceed its cap (the caller then scans).
    bool build(const std::vector<Rule>& rules) {
        struct Span {
            Key first, past;  // [first, past); past is unused when toEnd
            bool toEnd;       // the range reaches the top of the key space
            Hit hit;
        };
        std::vector<Span> spans;
        std::vector<Key> bounds{Key{}};
        for (uint32_t r = 0; r < rules.size(); ++r) {
            for (uint32_t c = 0; c < rules[r].cidrs.size(); ++c) {
                const knp_cidr& cidr = rules[r].cidrs[c];
                unsigned bits = cidr.prefix_len + (cidr.addr.family == KNP_FAMILY_IPV4 ? 96u : 0u);
                Span sp{{}, {}, true, {r, c}};
                for (unsigned i = 0; i < 16; ++i) {
                    unsigned keep = bits >= (i + 1) * 8 ? 8 : (bits > i * 8 ? bits - i * 8 : 0);
                    auto mask = static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
                    sp.first[i] = cidr.addr.bytes[i] & mask;
                    sp.past[i] = static_cast<uint8_t>(cidr.addr.bytes[i] | ~mask);
                }
                // past = last + 1, unless the range runs to the end of the key space.
                for (int i = 15; i >= 0; --i)
                    if (++sp.past[static_cast<size_t>(i)] != 0) {
                        sp.toEnd = false;
                        break;
                    }
                bounds.push_back(sp.first);
                if (!sp.toEnd) bounds.push_back(sp.past);
                spans.push_back(sp);
            }
        }
        std::sort(bounds.begin(), bounds.end());
        bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
        std::vector<std::vector<Hit>> lists(bounds.size());
        size_t total = 0;
        for (const Span& sp : spans) {
            size_t from =
                static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), sp.first) - bounds.begin());
            size_t to =
                sp.toEnd
                    ? bounds.size()
                    : static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), sp.past) - bounds.begin());
            total += to - from;
            if (total > kMaxHits) return false;
            for (size_t k = from; k < to; ++k) lists[k].push_back(sp.hit);
        }
        starts_ = std::move(bounds);
        offsets_.assign(1, 0);
        for (const auto& l : lists) {
            hits_.insert(hits_.end(), l.begin(), l.end());
            offsets_.push_back(static_cast<uint32_t>(hits_.size()));
        }
        return true;
    }

    std::span<const Hit> lookup(const knp_addr& a) const noexcept {
        Key k;
        std::memcpy(k.data(), a.bytes, 16);
        auto it = std::upper_bound(starts_.begin(), starts_.end(), k);
        if (it == starts_.begin()) return {};
        size_t i = static_cast<size_t>(it - starts_.begin()) - 1;
        return {hits_.data() + offsets_[i], hits_.data() + offsets_[i + 1]};
    }

private:
    static constexpr size_t kMaxHits = 1u << 22;
    std::vector<Key> starts_;
    std::vector<uint32_t> offsets_;
    std::vector<Hit> hits_;
};

// THREAD: immutable once update() returns it; evaluated concurrently.
struct Snapshot {
    knp::Interest interest;
    knp::Verdict verdict = knp::Verdict::Accept;
    std::vector<Rule> rules;
    PeerIndex index;
    bool indexed = false;

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const noexcept {
        return decide(a.packet(), a.packet().src(), &Rule::ingress);
    }
    knp::Decision evaluateEgress(const knp::EvalArgs& a) const noexcept {
        return decide(a.packet(), a.packet().dst(), &Rule::egress);
    }

private:
    knp::Decision decide(const knp::PacketView& p, const knp_addr& peer, bool Rule::*applies) const noexcept {
        if (indexed) {
            // Hits come in rule order: the first that passes every check is the first match.
            for (const PeerIndex::Hit& h : index.lookup(peer)) {
                const Rule& r = rules[h.rule];
                if (!(r.*applies) || !r.protocols.test(p.protocol()) || !r.portAllowed(p)) continue;
                if (knp::cidrContains(r.cidrs[h.cidr], peer)) return {verdict, r.reasons[h.cidr], r.id};
            }
            return knp::Decision::next();
        }
        for (const Rule& r : rules) {
            if (!(r.*applies) || !r.protocols.test(p.protocol()) || !r.portAllowed(p)) continue;
            for (size_t i = 0; i < r.cidrs.size(); ++i)
                if (knp::cidrContains(r.cidrs[i], peer)) return {verdict, r.reasons[i], r.id};
        }
        return knp::Decision::next();
    }
};

// ---------------------------------------------------------------------------------------------
// Config parsing: each helper checks one JSON value and fails with its pointer.
// ---------------------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& pointer, const std::string& message) {
    throw knp::ConfigError(pointer, message);
}

// The offending value as written, kept short: error messages are one line.
std::string shown(const json::value& v) {
    std::string s = json::serialize(v);
    return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

const json::object& asObject(const json::value& v, const std::string& ptr,
                             std::initializer_list<std::string_view> keys) {
    const json::object* o = v.if_object();
    if (o == nullptr) fail(ptr, "expected an object, got " + shown(v));
    for (const auto& kv : *o)
        if (std::find(keys.begin(), keys.end(), kv.key()) == keys.end())
            fail(knp::jsonPointer(ptr, kv.key()), "unknown key \"" + std::string(kv.key()) + "\"");
    return *o;
}

const json::array& asArray(const json::value& v, const std::string& ptr, size_t limit = kMaxListLength) {
    const json::array* a = v.if_array();
    if (a == nullptr) fail(ptr, "expected an array, got " + shown(v));
    if (a->empty()) fail(ptr, "expected a non-empty array, got []");
    if (a->size() > limit)
        fail(ptr, "has " + std::to_string(a->size()) + " entries, the limit is " + std::to_string(limit));
    return *a;
}

std::string asString(const json::value& v, const std::string& ptr) {
    const json::string* s = v.if_string();
    if (s == nullptr) fail(ptr, "expected a string, got " + shown(v));
    return std::string(*s);
}

uint16_t port(int64_t n, const std::string& text, const std::string& ptr) {
    if (n < 1 || n > 65535) fail(ptr, "port " + text + " is out of range 1..65535");
    return static_cast<uint16_t>(n);
}

// One side of "first-last": decimal digits only, so "+5", " 5" and "0x10" are rejected.
uint16_t portText(std::string_view text, const std::string& whole, const std::string& ptr) {
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (text.empty() || end != text.data() + text.size()) fail(ptr, "bad port range \"" + whole + "\"");
    return port(ec == std::errc() && n <= 65535 ? static_cast<int64_t>(n) : -1, std::string(text), ptr);
}

// 53, "53" or "8000-8100".
knp_port_range portRange(const json::value& v, const std::string& ptr) {
    if (v.is_int64() || v.is_uint64()) {
        uint16_t p = port(v.is_int64() ? v.get_int64() : -1, shown(v), ptr);  // a uint64 is > INT64_MAX
        return {p, p};
    }
    if (!v.is_string()) fail(ptr, "expected a port number or a \"first-last\" string, got " + shown(v));
    std::string text(v.get_string());
    size_t dash = text.find('-');
    uint16_t first = portText(std::string_view(text).substr(0, dash), text, ptr);
    uint16_t last = dash == std::string::npos ? first : portText(std::string_view(text).substr(dash + 1), text, ptr);
    if (first > last) fail(ptr, "port range \"" + text + "\" is reversed");
    return {first, last};
}

Rule parseRule(const json::value& v, const std::string& ptr, size_t index) {
    const json::object& o = asObject(v, ptr, {"cidrs", "direction", "protocols", "ports", "name"});
    Rule r;
    r.id = "#" + std::to_string(index);
    std::string label = r.id;  // how reasons name the rule; a user's name is quoted
    if (const json::value* n = o.if_contains("name")) {
        std::string p = knp::jsonPointer(ptr, "name");
        r.id = asString(*n, p);
        if (r.id.empty()) fail(p, "rule name must not be empty");
        label = "\"" + r.id + "\"";
    }
    if (const json::value* d = o.if_contains("direction")) {
        std::string p = knp::jsonPointer(ptr, "direction");
        std::string dir = asString(*d, p);
        if (dir == "ingress") {
            r.egress = false;
        } else if (dir == "egress") {
            r.ingress = false;
        } else if (dir != "both") {
            fail(p, "unknown direction \"" + dir + "\" (expected ingress, egress or both)");
        }
    }

    const json::value* cidrs = o.if_contains("cidrs");
    if (cidrs == nullptr) fail(ptr, "rule has no \"cidrs\"");
    std::string cp = knp::jsonPointer(ptr, "cidrs");
    const json::array& ca = asArray(*cidrs, cp);
    for (size_t i = 0; i < ca.size(); ++i) {
        std::string p = knp::jsonPointer(cp, i);
        std::string text = asString(ca[i], p);
        // Host bits are refused: "10.0.0.1/8" is far more often a typo than a wish for 10/8.
        auto c = knp::parseCidr(text, false);
        if (!c)
            fail(p, (knp::parseCidr(text) ? "CIDR \"" + text + "\" has host bits set" : "bad CIDR \"" + text + "\""));
        r.cidrs.push_back(*c);
        r.reasons.push_back("allowlist rule " + label + " (" + knp::formatCidr(*c) + ")");
    }

    if (const json::value* ps = o.if_contains("ports")) {
        std::string pp = knp::jsonPointer(ptr, "ports");
        const json::array& pa = asArray(*ps, pp);
        for (size_t i = 0; i < pa.size(); ++i) r.ports.push_back(portRange(pa[i], knp::jsonPointer(pp, i)));
    }

    if (const json::value* ps = o.if_contains("protocols")) {
        std::string pp = knp::jsonPointer(ptr, "protocols");
        const json::array& pa = asArray(*ps, pp);
        for (size_t i = 0; i < pa.size(); ++i) {
            std::string p = knp::jsonPointer(pp, i);
            std::string name = asString(pa[i], p);
            uint8_t proto = knp::parseProtocol(name);
            if (proto == 0) fail(p, "unknown protocol \"" + name + "\" (expected TCP, UDP, SCTP, ICMP or ICMPv6)");
            // Such a protocol could never match this rule: almost surely a mistake.
            if (!r.ports.empty() && (knp::protocolBit(proto) & kPortProtocolBits) == 0)
                fail(p, "protocol \"" + name + "\" has no ports, but the rule lists \"ports\"");
            r.protocols.set(proto);
            r.protocolBits |= knp::protocolBit(proto);
        }
    } else {
        r.protocols.set();  // portAllowed() narrows a rule with ports to TCP/UDP/SCTP
        r.protocolBits = r.ports.empty() ? 0 : kPortProtocolBits;
    }
    return r;
}

// The traffic the rules for one direction may DENY: their peers as `remote`, their protocols,
// their ports. A union per field, so it may cover more than the rules match; interest only has
// to cover, never to be exact.
knp::DirectionInterest denyInterest(const std::vector<Rule>& rules, bool Rule::*applies) {
    knp::DirectionInterest d;
    bool anyProtocol = false;
    bool anyPort = false;
    for (const Rule& r : rules) {
        if (!(r.*applies)) continue;
        d.remote.insert(d.remote.end(), r.cidrs.begin(), r.cidrs.end());
        anyProtocol |= r.protocolBits == 0;
        d.protocols |= r.protocolBits;
        // A rule without ports takes every port of the port-carrying protocols it allows.
        if (r.ports.empty()) {
            anyPort |= r.protocolBits == 0 || (r.protocolBits & kPortProtocolBits) != 0;
        } else {
            d.dstPorts.insert(d.dstPorts.end(), r.ports.begin(), r.ports.end());
        }
    }
    if (anyProtocol) d.protocols = 0;
    if (anyPort) d.dstPorts.clear();
    return d;
}

std::unique_ptr<Snapshot> parseConfig(std::string_view text) {
    boost::system::error_code ec;
    json::value root = json::parse(text, ec);
    if (ec) fail("", "config is not valid JSON: " + ec.message());
    const json::object& o = asObject(root, "", {"action", "rules"});

    auto s = std::make_unique<Snapshot>();
    if (const json::value* a = o.if_contains("action")) {
        std::string action = asString(*a, "/action");
        if (action == "deny") {
            s->verdict = knp::Verdict::Deny;
        } else if (action != "accept") {
            fail("/action", "unknown action \"" + action + "\" (expected accept or deny)");
        }
    }
    const json::value* rules = o.if_contains("rules");
    if (rules == nullptr) fail("", "config has no \"rules\"");
    const json::array& ra = asArray(*rules, "/rules", kMaxRules);
    for (size_t i = 0; i < ra.size(); ++i) s->rules.push_back(parseRule(ra[i], knp::jsonPointer("/rules", i), i));
    s->indexed = s->index.build(s->rules);

    // An accept-only plugin declares no interest: it is still asked about every connection some
    // other instance's interest brings to userspace, and claiming its peers would divert traffic
    // that nothing may deny (see knp_direction_interest).
    if (s->verdict == knp::Verdict::Deny) {
        s->interest.ingress = denyInterest(s->rules, &Rule::ingress);
        s->interest.egress = denyInterest(s->rules, &Rule::egress);
    }
    return s;
}

class Allowlist : public knp::Plugin<Allowlist, Snapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "allowlist",
        .version = "0.1.0",
        .description = "Accepts (or denies) traffic by the remote peer's CIDR, protocol and port",
        .configSchema = kSchema,
    };

    explicit Allowlist(const knp::InitContext& ctx) : Plugin(ctx), pending_(parseConfig(ctx.configJson)) {
        size_t n = pending_->rules.size();
        host().info("loaded " + std::to_string(n) + (n == 1 ? " rule" : " rules") + ", action " +
                    (pending_->verdict == knp::Verdict::Deny ? "deny" : "accept"));
    }

    // The rules come from the config alone, so the first update() hands over the snapshot built
    // at init and every later one answers "unchanged".
    std::unique_ptr<Snapshot> update(const knp::Update&) { return std::move(pending_); }

private:
    std::unique_ptr<Snapshot> pending_;
};

}  // namespace

KNP_EXPORT_PLUGIN(Allowlist)
