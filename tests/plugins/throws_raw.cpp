// throws_raw.so — models a raw C ABI plugin letting a C++ exception escape from init, update or evaluate.
//
// Config {"in": "init"|"update"|"evaluate"} (default init) picks where. Built with exceptions on
// purpose: the host must survive this with catch(...) around every plugin call.
#include "raw_plugin.h"

#include <boost/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace {

enum class ThrowIn { Init, Update, Evaluate };

// What the instance and its snapshots point at.
struct Instance {
    raw_instance base;  // first: raw_update() publishes through it
    ThrowIn in;
};

// Returns false (and fills `err`) when the config is not {"in": "init"|"update"|"evaluate"}.
bool parseConfig(std::string_view json, ThrowIn& in, knp_error* err) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(json, ec);
    const boost::json::object* obj = ec ? nullptr : v.if_object();
    if (obj == nullptr) {
        raw_fill_error(err, "config must be a JSON object", "");
        return false;
    }
    for (const auto& kv : *obj) {
        if (kv.key() != "in") {
            std::string pointer = "/" + std::string(kv.key());
            raw_fill_error(err, "unknown key (only \"in\" is accepted)", pointer.c_str());
            return false;
        }
        const boost::json::string* s = kv.value().if_string();
        if (s != nullptr && *s == "init") {
            in = ThrowIn::Init;
        } else if (s != nullptr && *s == "update") {
            in = ThrowIn::Update;
        } else if (s != nullptr && *s == "evaluate") {
            in = ThrowIn::Evaluate;
        } else {
            raw_fill_error(err, "\"in\" must be \"init\", \"update\" or \"evaluate\"", "/in");
            return false;
        }
    }
    return true;
}

int32_t initThrowing(const knp_init_args* args, knp_plugin** out, knp_error* err) {
    ThrowIn in = ThrowIn::Init;
    std::string_view json = args->config_json.len ? std::string_view(args->config_json.data, args->config_json.len)
                                                  : std::string_view("{}");
    if (!parseConfig(json, in, err)) return -EINVAL;
    if (in == ThrowIn::Init) throw std::runtime_error("throws_raw: exception escaping init");
    *out = reinterpret_cast<knp_plugin*>(new Instance{{0}, in});
    return KNP_OK;
}

void destroyInstance(knp_plugin* p) { delete reinterpret_cast<Instance*>(p); }

int32_t updateThrowing(knp_plugin* p, const knp_update_args* args, knp_update_result* out, knp_error* err) {
    auto* self = reinterpret_cast<Instance*>(p);
    if (self->in == ThrowIn::Update) throw std::runtime_error("throws_raw: exception escaping update");
    return raw_update(reinterpret_cast<knp_plugin*>(&self->base), args, out, err);
}

int32_t evaluateThrowing(const void*, const knp_eval_args*, knp_eval_result*) {
    // Only reachable with in=evaluate: the other modes never publish a snapshot.
    throw std::runtime_error("throws_raw: exception escaping evaluate");
}

constexpr knp_plugin_descriptor kDescriptor = {
    .struct_size = sizeof(knp_plugin_descriptor),
    .abi_major = KNP_ABI_MAJOR,
    .abi_minor = KNP_ABI_MINOR,
    .reserved = 0,
    .name = "throws_raw",
    .version = "0.0.0",
    .description = "lets C++ exceptions escape through the C ABI",
    .contact = "",
    .license = "Apache-2.0",
    .capabilities = KNP_CAP_INGRESS | KNP_CAP_EGRESS,
    .config_schema = nullptr,
    .init = initThrowing,
    .destroy = destroyInstance,
    .get_watches = nullptr,
    .update = updateThrowing,
    .release_snapshot = raw_release_snapshot,
    .evaluate_ingress = evaluateThrowing,
    .evaluate_egress = evaluateThrowing,
};

}  // namespace

RAW_PLUGIN_ENTRY(&kDescriptor)
