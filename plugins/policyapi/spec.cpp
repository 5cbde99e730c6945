#include "policyapi/spec.hpp"

#include <boost/json.hpp>

#include <array>

#include "common/cidr_set.hpp"
#include "common/json_util.hpp"

namespace knp::papi {

namespace json = boost::json;
// The strict JSON readers every policy plugin shares (common/json_util.hpp).
using namespace knp::policy;  // NOLINT(google-build-using-namespace): asArray, asObject, member, fail, ...

std::string_view kindName(Api api) noexcept {
    constexpr std::string_view kNames[] = {"AdminNetworkPolicy", "BaselineAdminNetworkPolicy", "ClusterNetworkPolicy"};
    return kNames[static_cast<size_t>(api)];
}

std::string_view actionName(Action a) noexcept {
    constexpr std::string_view kNames[] = {"Accept", "Deny", "Pass"};
    return kNames[static_cast<size_t>(a)];
}

namespace {

constexpr uint8_t kProtocols[] = {KNP_PROTO_TCP, KNP_PROTO_UDP, KNP_PROTO_SCTP};

struct Limits {
    size_t rules;  // per direction
    size_t peers;  // per rule
    size_t ports;  // per rule
};

Limits limitsOf(Api api) noexcept {
    if (api == Api::ClusterNetworkPolicy) return {25, 25, 25};
    return {100, 100, 100};
}

std::string listOf(std::initializer_list<std::string_view> xs) {
    std::string out;
    for (std::string_view x : xs) out += (out.empty() ? "" : ", ") + std::string(x);
    return out;
}

// The one field of `o` this implementation knows among `known` (absent and null do not count),
// or "" when `o` carries only fields it does not know: a newer CRD's, which the caller fails
// closed on. Several known fields, or an empty object, are invalid (the CRDs' "exactly one of").
std::string_view oneOf(const json::object& o, const std::string& ptr, std::initializer_list<std::string_view> known) {
    std::string_view found;
    for (std::string_view k : known) {
        if (member(o, k) == nullptr) continue;
        if (!found.empty())
            fail(ptr, "exactly one of " + listOf(known) + ", got " + std::string(found) + " and " + std::string(k));
        found = k;
    }
    if (found.empty() && o.empty()) fail(ptr, "needs one of " + listOf(known));
    return found;
}

uint8_t protocolOf(const json::object& o, const std::string& ptr) {
    const json::value* p = member(o, "protocol");
    if (p == nullptr) return KNP_PROTO_TCP;  // the CRD's default (v0.1.7+), and NetworkPolicy's
    std::string_view s = asString(*p, child(ptr, "protocol"), 16);
    if (s == "TCP") return KNP_PROTO_TCP;
    if (s == "UDP") return KNP_PROTO_UDP;
    if (s == "SCTP") return KNP_PROTO_SCTP;
    fail(child(ptr, "protocol"), "\"" + std::string(s) + "\" is not TCP, UDP or SCTP");
}

uint16_t portAt(const json::object& o, std::string_view key, const std::string& ptr) {
    const json::value* v = member(o, key);
    if (v == nullptr) fail(child(ptr, key), "required");
    return static_cast<uint16_t>(asInt(*v, child(ptr, key), 1, 65535));
}

// A range's {start, end}: inclusive, start < end (the CRDs' CEL rule).
policy::PortSpec rangeOf(const json::object& o, const std::string& ptr, uint8_t protocol) {
    policy::PortSpec p;
    p.protocol = protocol;
    p.first = portAt(o, "start", ptr);
    p.last = portAt(o, "end", ptr);
    if (p.first >= p.last)
        fail(child(ptr, "end"), std::to_string(p.last) + " must be greater than start " + std::to_string(p.first));
    return p;
}

void addNamed(RuleSpec& r, std::string_view name, const std::string& ptr) {
    if (!policy::validPortName(name))
        fail(ptr, "\"" + std::string(name) +
                      "\" is not a valid port name (1-15 lowercase alphanumerics or '-', at least one letter)");
    // Resolved on the destination pod with that container port's own number AND protocol:
    // one entry per protocol, each of which matches only a container port of that protocol.
    for (uint8_t proto : kProtocols) {
        policy::PortSpec p;
        p.protocol = proto;
        p.name = std::string(name);
        r.ports.push_back(std::move(p));
    }
}

// One v1alpha1 `ports` entry: portNumber | portRange | namedPort. False: no known field.
bool readPort(RuleSpec& r, const json::object& o, const std::string& p) {
    std::string_view key = oneOf(o, p, {"portNumber", "portRange", "namedPort"});
    if (key.empty()) return false;
    std::string kp = child(p, key);
    if (key == "namedPort") {
        addNamed(r, asString(*member(o, key), kp, 64), kp);
        return true;
    }
    const json::object& n = asObject(*member(o, key), kp);
    if (key == "portRange") {
        r.ports.push_back(rangeOf(n, kp, protocolOf(n, kp)));
    } else {
        policy::PortSpec s;
        s.protocol = protocolOf(n, kp);
        s.first = s.last = portAt(n, "port", kp);
        r.ports.push_back(s);
    }
    return true;
}

// One v1alpha2 `protocols` entry: tcp|udp|sctp {destinationPort: {number | range}} |
// destinationNamedPort. False: no known field at some level.
bool readProtocol(RuleSpec& r, const json::object& o, const std::string& p) {
    std::string_view key = oneOf(o, p, {"tcp", "udp", "sctp", "destinationNamedPort"});
    if (key.empty()) return false;
    std::string kp = child(p, key);
    if (key == "destinationNamedPort") {
        addNamed(r, asString(*member(o, key), kp, 64), kp);
        return true;
    }
    uint8_t proto = key == "tcp" ? KNP_PROTO_TCP : key == "udp" ? KNP_PROTO_UDP : KNP_PROTO_SCTP;
    const json::object& po = asObject(*member(o, key), kp);
    const json::value* dp = member(po, "destinationPort");
    if (dp == nullptr) {
        if (po.empty())
            fail(kp, "needs destinationPort (for every port of the protocol use range 1-65535, start < end)");
        return false;
    }
    std::string dpp = child(kp, "destinationPort");
    const json::object& d = asObject(*dp, dpp);
    std::string_view which = oneOf(d, dpp, {"number", "range"});
    if (which.empty()) return false;
    if (which == "range") {
        std::string rp = child(dpp, "range");
        r.ports.push_back(rangeOf(asObject(*member(d, "range"), rp), rp, proto));
    } else {
        policy::PortSpec s;
        s.protocol = proto;
        s.first = s.last = portAt(d, "number", dpp);
        r.ports.push_back(s);
    }
    return true;
}

// A rule's `ports` (v1alpha1) or `protocols` (v1alpha2): 1..limit entries.
void readPorts(Api api, RuleSpec& r, const json::value& v, const std::string& ptr, const Limits& lim) {
    const json::array& a = asArray(v, ptr, lim.ports);
    if (a.empty()) fail(ptr, "must have at least 1 entry (leave it out for all traffic)");
    r.allPorts = false;
    for (size_t i = 0; i < a.size(); ++i) {
        std::string p = child(ptr, i);
        const json::object& o = asObject(a[i], p);
        bool known = api == Api::ClusterNetworkPolicy ? readProtocol(r, o, p) : readPort(r, o, p);
        if (!known) r.unknownPort = true;  // a newer CRD's field: fail closed
    }
}

void checkOldShape(const json::object& o, const std::string& ptr) {
    for (std::string_view k : {"namespaceSelector", "sameLabels", "notSameLabels"})
        if (member(o, k) != nullptr)
            fail(child(ptr, k), "is the pre-v0.1.3 shape; write the label selector directly under `namespaces`");
}

PeerSpec readPeer(const json::value& v, const std::string& ptr, Api api, bool ingress, PolicySpec& out) {
    const json::object& o = asObject(v, ptr);
    // What this implementation knows for the direction; anything else is a newer CRD's field.
    std::string_view key = ingress ? oneOf(o, ptr, {"namespaces", "pods"})
                           : api == Api::BaselineAdminNetworkPolicy
                               ? oneOf(o, ptr, {"namespaces", "pods", "nodes", "networks"})
                               : oneOf(o, ptr, {"namespaces", "pods", "nodes", "networks", "domainNames"});
    PeerSpec p;
    if (key.empty()) {
        p.kind = PeerSpec::Kind::Unknown;
        p.unknownField = std::string(o.begin()->key());
        return p;
    }
    std::string kp = child(ptr, key);
    const json::value& f = *member(o, key);
    if (key == "namespaces") {
        p.kind = PeerSpec::Kind::Namespaces;
        checkOldShape(asObject(f, kp), kp);
        p.namespaceSelector = policy::LabelSelector::parse(f, kp);
    } else if (key == "pods") {
        p.kind = PeerSpec::Kind::Pods;
        const json::object& po = asObject(f, kp);
        if (member(po, "namespaces") != nullptr)
            fail(child(kp, "namespaces"), "is the pre-v0.1.3 shape; use namespaceSelector");
        const json::value* ns = member(po, "namespaceSelector");
        const json::value* pod = member(po, "podSelector");
        if (ns == nullptr) fail(child(kp, "namespaceSelector"), "required");
        if (pod == nullptr) fail(child(kp, "podSelector"), "required");
        p.namespaceSelector = policy::LabelSelector::parse(*ns, child(kp, "namespaceSelector"));
        p.podSelector = policy::LabelSelector::parse(*pod, child(kp, "podSelector"));
    } else if (key == "nodes") {
        p.kind = PeerSpec::Kind::Nodes;
        p.nodeSelector = policy::LabelSelector::parse(f, kp);
    } else if (key == "networks") {
        p.kind = PeerSpec::Kind::Networks;
        const json::array& a = asArray(f, kp, 25);
        if (a.empty()) fail(kp, "must have at least 1 CIDR");
        for (size_t i = 0; i < a.size(); ++i) {
            std::string cp = child(kp, i);
            std::string_view text = asString(a[i], cp, 64);
            auto c = policy::parseKubeCidr(text);
            if (!c) fail(cp, "\"" + std::string(text) + "\" is not a CIDR");
            p.networks.push_back(*c);
        }
    } else {
        p.kind = PeerSpec::Kind::DomainNames;
        const json::array& a = asArray(f, kp, 25);
        if (a.empty()) fail(kp, "must have at least 1 domain name");
        for (size_t i = 0; i < a.size(); ++i) asString(a[i], child(kp, i), 253);
        out.usesDomainNames = true;
    }
    return p;
}

Action readAction(Api api, const json::object& r, const std::string& ptr) {
    const json::value* a = member(r, "action");
    if (a == nullptr) fail(child(ptr, "action"), "required");
    std::string ap = child(ptr, "action");
    std::string_view s = asString(*a, ap, 32);
    switch (api) {
        case Api::AdminNetworkPolicy:
            if (s == "Allow") return Action::Accept;
            if (s == "Deny") return Action::Deny;
            if (s == "Pass") return Action::Pass;
            fail(ap, "\"" + std::string(s) + "\" is not Allow, Deny or Pass");
        case Api::BaselineAdminNetworkPolicy:
            if (s == "Allow") return Action::Accept;
            if (s == "Deny") return Action::Deny;
            fail(ap, "\"" + std::string(s) + "\" is not Allow or Deny");
        case Api::ClusterNetworkPolicy:
            if (s == "Accept") return Action::Accept;
            if (s == "Deny") return Action::Deny;
            if (s == "Pass") return Action::Pass;
            fail(ap, "\"" + std::string(s) + "\" is not Accept, Deny or Pass");
    }
    fail(ap, "unknown API");
}

std::vector<RuleSpec> readRules(Api api, const json::value& v, const std::string& ptr, bool ingress, PolicySpec& out) {
    Limits lim = limitsOf(api);
    const json::array& a = asArray(v, ptr, lim.rules);
    std::vector<RuleSpec> rules;
    for (size_t i = 0; i < a.size(); ++i) {
        std::string rp = child(ptr, i);
        const json::object& o = asObject(a[i], rp);
        RuleSpec r;
        if (const json::value* n = member(o, "name")) r.name = std::string(asString(*n, child(rp, "name"), 100));
        r.action = readAction(api, o, rp);
        std::string_view peersKey = ingress ? "from" : "to";
        std::string pp = child(rp, peersKey);
        const json::value* peers = member(o, peersKey);
        if (peers == nullptr) fail(pp, "required");
        const json::array& pa = asArray(*peers, pp, lim.peers);
        if (pa.empty()) fail(pp, "must have at least 1 peer");
        for (size_t j = 0; j < pa.size(); ++j) r.peers.push_back(readPeer(pa[j], child(pp, j), api, ingress, out));
        std::string_view portsKey = api == Api::ClusterNetworkPolicy ? "protocols" : "ports";
        if (const json::value* ports = member(o, portsKey)) readPorts(api, r, *ports, child(rp, portsKey), lim);
        // CEL: a named port cannot share a rule with networks, nodes or domainNames.
        bool named = false;
        for (const policy::PortSpec& p : r.ports) named = named || !p.name.empty();
        if (named) {
            for (size_t j = 0; j < r.peers.size(); ++j) {
                PeerSpec::Kind k = r.peers[j].kind;
                if (k == PeerSpec::Kind::Networks || k == PeerSpec::Kind::Nodes || k == PeerSpec::Kind::DomainNames)
                    fail(child(pp, j), "a named port cannot be combined with networks, nodes or domainNames peers");
            }
        }
        rules.push_back(std::move(r));
    }
    return rules;
}

}  // namespace

PolicySpec parsePolicy(Api api, std::string_view text, std::string_view eventName) {
    json::value doc = policy::parseJson(text, kMaxObjectBytes);
    const json::object& root = asObject(doc, "");
    PolicySpec s;
    s.api = api;
    s.tier = api == Api::BaselineAdminNetworkPolicy ? Tier::Baseline : Tier::Admin;
    if (const json::value* m = member(root, "metadata")) {
        const json::object& meta = asObject(*m, "/metadata");
        if (const json::value* n = member(meta, "name")) s.name = std::string(asString(*n, "/metadata/name", 253));
    }
    if (s.name.empty()) s.name = std::string(eventName);
    if (s.name.empty()) fail("/metadata/name", "required");
    s.key = std::string(kindName(api)) + " \"" + s.name + "\"";
    if (api == Api::BaselineAdminNetworkPolicy && s.name != "default")
        fail("/metadata/name", "a BaselineAdminNetworkPolicy is a singleton and must be named \"default\"");

    const json::value* specV = member(root, "spec");
    if (specV == nullptr) fail("/spec", "required");
    const json::object& spec = asObject(*specV, "/spec");

    if (api == Api::ClusterNetworkPolicy) {
        const json::value* t = member(spec, "tier");
        if (t == nullptr) fail("/spec/tier", "required (Admin or Baseline)");
        std::string_view ts = asString(*t, "/spec/tier", 32);
        if (ts == "Admin") {
            s.tier = Tier::Admin;
        } else if (ts == "Baseline") {
            s.tier = Tier::Baseline;
        } else {
            fail("/spec/tier", "\"" + std::string(ts) + "\" is not Admin or Baseline");
        }
    }
    if (api != Api::BaselineAdminNetworkPolicy) {
        const json::value* p = member(spec, "priority");
        if (p == nullptr) fail("/spec/priority", "required (0-1000)");
        s.priority = static_cast<int32_t>(asInt(*p, "/spec/priority", 0, 1000));
    }

    const json::value* subj = member(spec, "subject");
    if (subj == nullptr) fail("/spec/subject", "required");
    const json::object& so = asObject(*subj, "/spec/subject");
    std::string_view subjectKey = oneOf(so, "/spec/subject", {"namespaces", "pods"});
    if (subjectKey.empty()) fail("/spec/subject", "needs one of namespaces, pods");
    if (subjectKey == "namespaces") {
        s.subjectIsNamespaces = true;
        checkOldShape(asObject(*member(so, "namespaces"), "/spec/subject/namespaces"), "/spec/subject/namespaces");
        s.subjectNamespaces = policy::LabelSelector::parse(*member(so, "namespaces"), "/spec/subject/namespaces");
    } else {
        s.subjectIsNamespaces = false;
        const json::object& po = asObject(*member(so, "pods"), "/spec/subject/pods");
        const json::value* ns = member(po, "namespaceSelector");
        const json::value* pod = member(po, "podSelector");
        if (ns == nullptr) fail("/spec/subject/pods/namespaceSelector", "required");
        if (pod == nullptr) fail("/spec/subject/pods/podSelector", "required");
        s.subjectNamespaces = policy::LabelSelector::parse(*ns, "/spec/subject/pods/namespaceSelector");
        s.subjectPods = policy::LabelSelector::parse(*pod, "/spec/subject/pods/podSelector");
    }
    if (const json::value* in = member(spec, "ingress")) s.ingress = readRules(api, *in, "/spec/ingress", true, s);
    if (const json::value* eg = member(spec, "egress")) s.egress = readRules(api, *eg, "/spec/egress", false, s);
    return s;
}

}  // namespace knp::papi
