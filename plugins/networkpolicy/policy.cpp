#include "networkpolicy/policy.hpp"

#include <knp/types.hpp>

#include "common/json_util.hpp"

namespace knp::netpol {

namespace json = boost::json;
using policy::asArray;
using policy::asInt;
using policy::asObject;
using policy::asString;
using policy::child;
using policy::fail;
using policy::member;

namespace {

policy::PortSpec parsePort(const json::value& v, const std::string& ptr) {
    const json::object& o = asObject(v, ptr);
    policy::PortSpec p;
    if (const json::value* proto = member(o, "protocol")) {
        std::string pp = child(ptr, "protocol");
        std::string_view text = asString(*proto, pp, 64);
        // The API server compares exactly: "tcp" is refused, not folded.
        if (text == "TCP") {
            p.protocol = KNP_PROTO_TCP;
        } else if (text == "UDP") {
            p.protocol = KNP_PROTO_UDP;
        } else if (text == "SCTP") {
            p.protocol = KNP_PROTO_SCTP;
        } else {
            fail(pp, "unsupported protocol \"" + std::string(text) + "\" (TCP, UDP or SCTP)");
        }
    }
    const json::value* port = member(o, "port");
    bool numeric = false;
    if (port != nullptr) {
        std::string pp = child(ptr, "port");
        if (port->is_string()) {
            std::string_view name = asString(*port, pp, 64);
            if (!policy::validPortName(name))
                fail(pp, "\"" + std::string(name) +
                             "\" is neither a port number nor a valid port name (1-15 lower-case alphanumerics or "
                             "'-', at least one letter)");
            p.name = std::string(name);
        } else {
            p.first = p.last = static_cast<uint16_t>(asInt(*port, pp, 1, 65535));
            numeric = true;
        }
    }
    if (const json::value* end = member(o, "endPort")) {
        std::string ep = child(ptr, "endPort");
        if (port == nullptr) fail(ep, "may not be specified when port is not specified");
        if (!numeric) fail(ep, "may not be specified when port is a named port");
        auto e = static_cast<uint16_t>(asInt(*end, ep, 1, 65535));
        if (e < p.first)
            fail(ep, std::to_string(e) + " must be greater than or equal to port " + std::to_string(p.first));
        p.last = e;
    }
    return p;
}

policy::IpBlock parseIpBlock(const json::value& v, const std::string& ptr) {
    const json::object& o = asObject(v, ptr);
    policy::IpBlock b;
    const json::value* cidr = member(o, "cidr");
    std::string cp = child(ptr, "cidr");
    if (cidr == nullptr) fail(cp, "required");
    std::string_view text = asString(*cidr, cp, 64);
    auto c = policy::parseKubeCidr(text);
    if (!c) fail(cp, "\"" + std::string(text) + "\" is not a valid CIDR (address/prefix)");
    b.cidr = *c;
    if (const json::value* ex = member(o, "except")) {
        std::string ep = child(ptr, "except");
        const json::array& a = asArray(*ex, ep, kMaxExcept);
        for (size_t i = 0; i < a.size(); ++i) {
            std::string p = child(ep, i);
            std::string_view et = asString(a[i], p, 64);
            auto e = policy::parseKubeCidr(et);
            if (!e) fail(p, "\"" + std::string(et) + "\" is not a valid CIDR (address/prefix)");
            if (!policy::strictSubset(*e, b.cidr))
                fail(p, "\"" + std::string(et) + "\" must be a strict subset of cidr \"" + std::string(text) + "\"");
            b.except.push_back(*e);
        }
    }
    return b;
}

PeerSpec parsePeer(const json::value& v, const std::string& ptr) {
    const json::object& o = asObject(v, ptr);
    PeerSpec p;
    if (const json::value* s = member(o, "podSelector"))
        p.podSelector = policy::LabelSelector::parse(*s, child(ptr, "podSelector"));
    if (const json::value* s = member(o, "namespaceSelector"))
        p.namespaceSelector = policy::LabelSelector::parse(*s, child(ptr, "namespaceSelector"));
    if (const json::value* b = member(o, "ipBlock")) {
        if (p.podSelector || p.namespaceSelector)
            fail(ptr, "ipBlock may not be combined with podSelector or namespaceSelector in one peer");
        p.ipBlock = parseIpBlock(*b, child(ptr, "ipBlock"));
    }
    if (!p.podSelector && !p.namespaceSelector && !p.ipBlock)
        fail(ptr, "a peer must specify podSelector, namespaceSelector or ipBlock");
    return p;
}

RuleSpec parseRule(const json::value& v, const std::string& ptr, std::string_view peersKey) {
    const json::object& o = asObject(v, ptr);
    RuleSpec r;
    if (const json::value* ports = member(o, "ports")) {
        std::string pp = child(ptr, "ports");
        const json::array& a = asArray(*ports, pp, kMaxPorts);
        for (size_t i = 0; i < a.size(); ++i) r.ports.push_back(parsePort(a[i], child(pp, i)));
        r.allPorts = r.ports.empty();
    }
    if (const json::value* peers = member(o, peersKey)) {
        std::string pp = child(ptr, peersKey);
        const json::array& a = asArray(*peers, pp, kMaxPeers);
        for (size_t i = 0; i < a.size(); ++i) r.peers.push_back(parsePeer(a[i], child(pp, i)));
        r.allPeers = r.peers.empty();
    }
    return r;
}

std::vector<RuleSpec> parseRules(const json::object& spec, std::string_view key, std::string_view peersKey) {
    std::vector<RuleSpec> out;
    const json::value* rules = member(spec, key);
    if (rules == nullptr) return out;
    std::string p = child("/spec", key);
    const json::array& a = asArray(*rules, p, kMaxRules);
    for (size_t i = 0; i < a.size(); ++i) out.push_back(parseRule(a[i], child(p, i), peersKey));
    return out;
}

}  // namespace

PolicySpec parseNetworkPolicy(std::string_view text, std::string_view eventNamespace, std::string_view eventName) {
    json::value root = policy::parseJson(text, kMaxObjectBytes);
    const json::object& o = asObject(root, "");
    PolicySpec p;
    if (const json::value* meta = member(o, "metadata")) {
        const json::object& m = asObject(*meta, "/metadata");
        if (const json::value* n = member(m, "name")) p.name = asString(*n, "/metadata/name", 253);
        if (const json::value* n = member(m, "namespace")) p.ns = asString(*n, "/metadata/namespace", 63);
    }
    if (p.name.empty()) p.name = eventName;
    if (p.ns.empty()) p.ns = eventNamespace;
    if (p.ns.empty()) p.ns = "default";  // as kubectl does for a namespaced object
    if (p.name.empty()) fail("/metadata/name", "required");
    p.key = p.ns + "/" + p.name;

    const json::value* specValue = member(o, "spec");
    // A missing spec is an empty one: select every pod, isolate for ingress.
    json::object none;
    const json::object& spec = specValue != nullptr ? asObject(*specValue, "/spec") : none;
    if (const json::value* s = member(spec, "podSelector"))
        p.podSelector = policy::LabelSelector::parse(*s, "/spec/podSelector");

    std::vector<RuleSpec> ingress = parseRules(spec, "ingress", "from");
    std::vector<RuleSpec> egress = parseRules(spec, "egress", "to");

    bool typesGiven = false;
    if (const json::value* types = member(spec, "policyTypes")) {
        const json::array& a = asArray(*types, "/spec/policyTypes", 2);
        for (size_t i = 0; i < a.size(); ++i) {
            std::string tp = child("/spec/policyTypes", i);
            std::string_view t = asString(a[i], tp, 64);
            if (t == "Ingress") {
                p.ingress = true;
            } else if (t == "Egress") {
                p.egress = true;
            } else {
                fail(tp, "unsupported policy type \"" + std::string(t) + "\" (Ingress or Egress)");
            }
        }
        typesGiven = !a.empty();
    }
    if (!typesGiven) {
        // SetDefaults_NetworkPolicy: Ingress always, Egress when there are egress rules.
        p.ingress = true;
        p.egress = !egress.empty();
    }
    if (p.ingress) p.ingressRules = std::move(ingress);
    if (p.egress) p.egressRules = std::move(egress);
    return p;
}

}  // namespace knp::netpol
