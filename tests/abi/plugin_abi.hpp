// Drives test plugins straight through dlopen and the C function table — no SDK code between
// the test and the plugin, so these tests see exactly what the host's loader sees.
#ifndef KNP_TESTS_ABI_PLUGIN_ABI_HPP
#define KNP_TESTS_ABI_PLUGIN_ABI_HPP

#include <knp/plugin_api.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <dlfcn.h>

namespace abi_test {

// For CHECKs on function pointers, which doctest cannot print.
template <class Fn>
bool present(Fn* fn) {
    return fn != nullptr;
}

// <builddir>/tests/plugins/NAME.so; the directory comes from meson (KNP_TEST_PLUGIN_DIR).
inline std::string pluginPath(std::string_view name) {
    const char* dir = std::getenv("KNP_TEST_PLUGIN_DIR");
    REQUIRE_MESSAGE(dir != nullptr, "KNP_TEST_PLUGIN_DIR is not set (run through meson test)");
    return std::string(dir) + "/" + std::string(name) + ".so";
}

// dlopen as the host does (never closed, like the host never unloads).
inline void* openPlugin(std::string_view name) {
    std::string path = pluginPath(name);
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(h != nullptr, "dlopen " << path << ": " << dlerror());
    return h;
}

// Calls the entry; REQUIREs that it exists.
inline const knp_plugin_descriptor* entry(void* handle) {
    auto fn = reinterpret_cast<knp_plugin_entry_fn>(dlsym(handle, KNP_PLUGIN_ENTRY_SYMBOL));
    REQUIRE_MESSAGE(present(fn), KNP_PLUGIN_ENTRY_SYMBOL " not exported");
    return fn();
}

inline const knp_plugin_descriptor* loadDescriptor(std::string_view name) {
    const knp_plugin_descriptor* d = entry(openPlugin(name));
    REQUIRE(d != nullptr);
    return d;
}

// Dynamic symbols the object defines, without version suffixes or version-node (A) entries.
inline std::set<std::string> exportedSymbols(std::string_view name) {
    const char* nm = std::getenv("NM");
    std::string cmd = std::string(nm ? nm : "nm") + " -D --defined-only '" + pluginPath(name) + "'";
    FILE* f = popen(cmd.c_str(), "r");
    REQUIRE_MESSAGE(f != nullptr, "cannot run " << cmd);
    std::set<std::string> out;
    char line[1024];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        char type = 0;
        char sym[900] = {};
        if (std::sscanf(line, "%*s %c %899s", &type, sym) != 2 || type == 'A') continue;
        std::string s(sym);
        out.insert(s.substr(0, s.find('@')));
    }
    REQUIRE_MESSAGE(pclose(f) == 0, cmd << " failed");
    return out;
}

// A host-owned error buffer pair, as the host passes to control calls.
struct ErrorBuffers {
    char message[256] = {};
    char pointer[128] = {};
    knp_error err{sizeof(knp_error), 0, message, sizeof message, pointer, sizeof pointer};
};

// A host function table that records log lines; every other service is a harmless stub.
struct FakeHost {
    std::vector<std::string> logs;
    knp_host_api api{};

    FakeHost() {
        api.struct_size = sizeof api;
        api.log = [](void* ctx, int32_t, knp_str m) { static_cast<FakeHost*>(ctx)->logs.emplace_back(m.data, m.len); };
        api.log_enabled = [](void*, int32_t) -> int32_t { return 1; };
        api.metric_define = [](void*, int32_t, knp_str, knp_str, uint32_t* id) -> int32_t {
            *id = 0;
            return KNP_OK;
        };
        api.metric_add = [](void*, uint32_t, double) {};
        api.metric_set = [](void*, uint32_t, double) {};
        api.metric_observe = [](void*, uint32_t, double) {};
        api.request_update = [](void*) {};
        api.monotonic_ns = [](void*) -> uint64_t { return 0; };
        api.for_each_pod = [](void*, int32_t, int32_t (*)(void*, const knp_pod*), void*) -> int32_t { return 0; };
    }
};

inline knp_str str(std::string_view s) { return knp_str{s.data(), s.size()}; }
inline std::string_view view(knp_str s) { return s.len ? std::string_view(s.data, s.len) : std::string_view(); }

// One instance of a plugin driven through the descriptor; releases and destroys on scope exit.
class Instance {
public:
    Instance(const knp_plugin_descriptor* d, std::string_view config) : d_(d) {
        knp_init_args a{};
        a.struct_size = sizeof a;
        a.host_abi_minor = KNP_ABI_MINOR;
        a.instance_name = str("test");
        a.config_json = str(config);
        a.host = &host.api;
        a.host_ctx = &host;
        initRc = d_->init(&a, &plugin_, &initError.err);
    }
    ~Instance() {
        for (void* s : snapshots_) d_->release_snapshot(plugin_, s);
        d_->destroy(plugin_);
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    int32_t update(const std::vector<knp_event>& events = {}) {
        std::vector<const knp_event*> ptrs;
        for (const knp_event& e : events) ptrs.push_back(&e);
        knp_update_args a{};
        a.struct_size = sizeof a;
        a.events = ptrs.data();
        a.n_events = ptrs.size();
        knp_update_result r{};
        r.struct_size = sizeof r;
        int32_t rc = d_->update(plugin_, &a, &r, &updateError.err);
        if (r.snapshot != nullptr) {
            snapshots_.push_back(r.snapshot);
            interest = r.interest;
        }
        return rc;
    }

    std::vector<const knp_watch*> watches() {
        REQUIRE(present(d_->get_watches));
        const knp_watch* const* w = nullptr;
        size_t n = 0;
        REQUIRE(d_->get_watches(plugin_, &w, &n) == KNP_OK);
        return std::vector<const knp_watch*>(w, w + n);
    }

    // Evaluates on the latest snapshot; `rc` receives the return code.
    knp_eval_result evaluate(bool ingress, const knp_packet& p, const knp_pod* dst, int32_t& rc) {
        REQUIRE_MESSAGE(!snapshots_.empty(), "no snapshot yet");
        knp_eval_args a{sizeof(knp_eval_args), 0, &p, nullptr, dst};
        knp_eval_result r{};
        r.struct_size = sizeof r;
        rc = (ingress ? d_->evaluate_ingress : d_->evaluate_egress)(snapshots_.back(), &a, &r);
        return r;
    }

    FakeHost host;
    int32_t initRc = 0;
    ErrorBuffers initError;
    ErrorBuffers updateError;
    const knp_interest* interest = nullptr;

private:
    const knp_plugin_descriptor* d_;
    knp_plugin* plugin_ = nullptr;
    std::vector<void*> snapshots_;
};

// A TCP IPv4 packet 10.0.0.1 -> 10.0.0.2:dstPort.
inline knp_packet tcpPacket(uint16_t dstPort) {
    knp_packet p{};
    p.struct_size = sizeof p;
    p.family = KNP_FAMILY_IPV4;
    p.protocol = KNP_PROTO_TCP;
    for (knp_addr* a : {&p.src, &p.dst}) {
        a->family = KNP_FAMILY_IPV4;
        a->bytes[10] = a->bytes[11] = 0xff;
        a->bytes[12] = 10;
    }
    p.src.bytes[15] = 1;
    p.dst.bytes[15] = 2;
    p.src_port = 40000;
    p.dst_port = dstPort;
    return p;
}

}  // namespace abi_test

#endif  // KNP_TESTS_ABI_PLUGIN_ABI_HPP
