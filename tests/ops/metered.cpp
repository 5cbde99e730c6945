// metered.so — GOOD SDK plugin for the ops tests: defines metrics through the host API and moves
// them, so the tests see plugin metrics exported by knpd.
//
// config: {"denyPort": 0..65535, "evaluateDelayUs": 0..60000000} (optional; 0: never deny, no
// delay). Ingress: every connection to a local pod is queued (divert-all); `denyPort` is denied
// (rule "deny-port"), everything else is NEXT. `evaluateDelayUs` makes each evaluation sleep:
// a slow (or, with a large value, hung) plugin, so the shutdown tests find packets queued.
// Metrics: counter "evaluations", gauge "snapshots", histogram "update_seconds"; the name
// "not-a-name" is refused by the host (the tests check it does not appear).
#include "../plugins/sdk_config.hpp"

#include <knp/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace {

struct MeteredSnapshot {
    knp::Interest interest;
    knp::Host host;
    uint32_t evaluations = UINT32_MAX;
    uint16_t denyPort = 0;
    uint32_t delayUs = 0;
    std::string reason;

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const {
        host.add(evaluations, 1);
        if (delayUs != 0) std::this_thread::sleep_for(std::chrono::microseconds(delayUs));
        if (denyPort != 0 && a.packet().hasPorts() && a.packet().dstPort() == denyPort)
            return {knp::Verdict::Deny, reason, "deny-port"};
        return knp::Decision::next();
    }
};

class Metered : public knp::Plugin<Metered, MeteredSnapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "metered",
        .version = "1.0.0",
        .description = "defines and moves metrics through the host API (ops tests)",
    };

    explicit Metered(const knp::InitContext& ctx) : Plugin(ctx) {
        for (const auto& kv : knp_test::parseConfigObject(ctx.configJson)) {
            const int64_t* n = kv.value().if_int64();
            if (kv.key() == "evaluateDelayUs") {
                if (n == nullptr || *n < 0 || *n > 60000000)
                    throw knp::ConfigError("/evaluateDelayUs", "\"evaluateDelayUs\" must be an integer 0..60000000");
                delayUs_ = static_cast<uint32_t>(*n);
                continue;
            }
            if (kv.key() != "denyPort") knp_test::unknownKey(kv.key());
            if (n == nullptr || *n < 0 || *n > 65535)
                throw knp::ConfigError("/denyPort", "\"denyPort\" must be an integer 0..65535");
            denyPort_ = static_cast<uint16_t>(*n);
        }
        evaluations_ = host().defineMetric(KNP_METRIC_COUNTER, "evaluations", "packets this instance evaluated");
        snapshots_ = host().defineMetric(KNP_METRIC_GAUGE, "snapshots", "snapshots built");
        updates_ = host().defineMetric(KNP_METRIC_HISTOGRAM, "update_seconds", "time spent in update()");
        refused_ = host().defineMetric(KNP_METRIC_COUNTER, "not-a-name", "refused by the host");
    }

    std::unique_ptr<MeteredSnapshot> update(const knp::Update&) {
        if (published_) return nullptr;
        published_ = true;
        auto snap = std::make_unique<MeteredSnapshot>();
        snap->interest.ingress.divertAll = true;
        snap->host = host();
        snap->evaluations = evaluations_;
        snap->denyPort = denyPort_;
        snap->delayUs = delayUs_;
        snap->reason = "port " + std::to_string(denyPort_) + " is closed";
        host().set(snapshots_, 1);
        host().observe(updates_, 0.002);
        host().add(refused_, 1);  // a no-op: the id is UINT32_MAX
        return snap;
    }

private:
    uint16_t denyPort_ = 0;
    uint32_t delayUs_ = 0;
    uint32_t evaluations_ = UINT32_MAX, snapshots_ = UINT32_MAX, updates_ = UINT32_MAX, refused_ = UINT32_MAX;
    bool published_ = false;
};

}  // namespace

KNP_EXPORT_PLUGIN(Metered)
