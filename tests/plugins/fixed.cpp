// fixed.so — GOOD configurable SDK plugin for engine-ordering tests: a fixed verdict per direction (and dst port).
//
// config: {"ingress": "next|accept|deny", "egress": "next|accept|deny", "dstPort": 0..65535,
//          "reason": "text", "localPodsInterest": bool}; all optional (default next/next/0/""/false).
// dstPort 0 = every packet.
#include "sdk_config.hpp"

#include <knp/plugin.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace {

knp::Verdict toVerdict(std::string_view s) {
    if (s == "accept") return knp::Verdict::Accept;
    if (s == "deny") return knp::Verdict::Deny;
    return knp::Verdict::Next;
}

std::string_view defaultReason(knp::Verdict v) {
    switch (v) {
        case knp::Verdict::Accept:
            return "fixed accept";
        case knp::Verdict::Deny:
            return "fixed deny";
        case knp::Verdict::Next:
            break;
    }
    return "fixed next";
}

struct Config {
    knp::Verdict ingress = knp::Verdict::Next;
    knp::Verdict egress = knp::Verdict::Next;
    uint16_t dstPort = 0;
    std::string reason;
    bool localPodsInterest = false;  // ingress interest KNP_INTEREST_LOCAL_PODS, whatever the verdicts
};

// Immutable once published. Owns the reason text the decisions point into.
struct FixedSnapshot {
    Config config;
    knp::Interest interest;

    knp::Decision decide(knp::Verdict v, const knp::EvalArgs& a) const {
        if (v == knp::Verdict::Next) return knp::Decision::next();
        if (config.dstPort != 0 && !(a.packet().hasPorts() && a.packet().dstPort() == config.dstPort))
            return knp::Decision::next();
        std::string_view reason = config.reason.empty() ? defaultReason(v) : std::string_view(config.reason);
        return {v, reason, {}};
    }
    knp::Decision evaluateIngress(const knp::EvalArgs& a) const { return decide(config.ingress, a); }
    knp::Decision evaluateEgress(const knp::EvalArgs& a) const { return decide(config.egress, a); }
};

class Fixed : public knp::Plugin<Fixed, FixedSnapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "fixed",
        .version = "1.0.0",
        .description = "returns a configured verdict per direction (engine-ordering tests)",
    };

    explicit Fixed(const knp::InitContext& ctx) : Plugin(ctx) {
        for (const auto& kv : knp_test::parseConfigObject(ctx.configJson)) {
            std::string_view key = kv.key();
            const boost::json::value& v = kv.value();
            if (key == "ingress") {
                config_.ingress = toVerdict(knp_test::oneOf(key, v, {"next", "accept", "deny"}));
            } else if (key == "egress") {
                config_.egress = toVerdict(knp_test::oneOf(key, v, {"next", "accept", "deny"}));
            } else if (key == "dstPort") {
                const int64_t* port = v.if_int64();
                if (port == nullptr || *port < 0 || *port > 65535)
                    throw knp::ConfigError("/dstPort", "\"dstPort\" must be an integer 0..65535");
                config_.dstPort = static_cast<uint16_t>(*port);
            } else if (key == "localPodsInterest") {
                const bool* b = v.if_bool();
                if (b == nullptr)
                    throw knp::ConfigError("/localPodsInterest", "\"localPodsInterest\" must be a boolean");
                config_.localPodsInterest = *b;
            } else if (key == "reason") {
                const boost::json::string* s = v.if_string();
                if (s == nullptr) throw knp::ConfigError("/reason", "\"reason\" must be a string");
                config_.reason = std::string(*s);
            } else {
                knp_test::unknownKey(key);
            }
        }
    }

    // The config never changes: one snapshot, then "unchanged".
    std::unique_ptr<FixedSnapshot> update(const knp::Update&) {
        if (published_) return nullptr;
        published_ = true;
        auto snap = std::make_unique<FixedSnapshot>();
        snap->config = config_;
        interestFor(config_.ingress, snap->interest.ingress);
        interestFor(config_.egress, snap->interest.egress);
        // Lets dataplane tests queue every connection to a local pod and have the host keep
        // that set current as pods come and go.
        if (config_.localPodsInterest) snap->interest.ingress.localPods = true;
        return snap;
    }

private:
    // Interest must cover what it may deny; accepting alone needs none.
    void interestFor(knp::Verdict v, knp::DirectionInterest& d) const {
        if (v != knp::Verdict::Deny) return;
        d.divertAll = true;
        if (config_.dstPort != 0) {
            d.protocols = KNP_PROTO_BIT_TCP | KNP_PROTO_BIT_UDP | KNP_PROTO_BIT_SCTP;
            d.dstPorts.push_back({config_.dstPort, config_.dstPort});
        }
    }

    Config config_;
    bool published_ = false;
};

}  // namespace

KNP_EXPORT_PLUGIN(Fixed)
