// throws_sdk.so — models an SDK plugin throwing from ctor, update or evaluate; the SDK must return errors instead.
//
// Config {"in": "init"|"update"|"evaluate"} (default init) picks where; evaluate throws in both
// directions.
#include "sdk_config.hpp"

#include <knp/plugin.hpp>

#include <memory>
#include <stdexcept>
#include <string_view>

namespace {

struct ThrowingSnapshot {
    knp::Interest interest;

    knp::Decision evaluateIngress(const knp::EvalArgs&) const {
        throw std::runtime_error("throws_sdk: evaluateIngress threw");
    }
    knp::Decision evaluateEgress(const knp::EvalArgs&) const {
        throw std::runtime_error("throws_sdk: evaluateEgress threw");
    }
};

class ThrowsSdk : public knp::Plugin<ThrowsSdk, ThrowingSnapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "throws_sdk",
        .version = "0.0.0",
        .description = "throws from the constructor, update or evaluation",
    };

    explicit ThrowsSdk(const knp::InitContext& ctx) : Plugin(ctx) {
        std::string_view in = "init";
        for (const auto& kv : knp_test::parseConfigObject(ctx.configJson)) {
            if (kv.key() != "in") knp_test::unknownKey(kv.key());
            in = knp_test::oneOf("in", kv.value(), {"init", "update", "evaluate"});
        }
        if (in == "init") throw std::runtime_error("throws_sdk: constructor threw");
        throwInUpdate_ = in == "update";
    }

    std::unique_ptr<ThrowingSnapshot> update(const knp::Update&) {
        if (throwInUpdate_) throw std::runtime_error("throws_sdk: update threw");
        if (published_) return nullptr;
        published_ = true;
        // Divert everything so the host really reaches the throwing evaluations.
        auto snap = std::make_unique<ThrowingSnapshot>();
        snap->interest.ingress.divertAll = true;
        snap->interest.egress.divertAll = true;
        return snap;
    }

private:
    bool throwInUpdate_ = false;
    bool published_ = false;
};

}  // namespace

KNP_EXPORT_PLUGIN(ThrowsSdk)
