// The GOOD test plugins as the loader sees them: descriptor fields, ABI version, capabilities,
// exported symbols, and one round trip through the C function table. c_plugin is pure C11,
// fixed is built with the C++ SDK; both must look the same from here.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "plugin_abi.hpp"

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

using namespace abi_test;

namespace {

void checkCommonDescriptor(const knp_plugin_descriptor* d, const char* name) {
    CHECK(d->struct_size == sizeof(knp_plugin_descriptor));
    CHECK(d->abi_major == KNP_ABI_MAJOR);
    CHECK(d->abi_minor == KNP_ABI_MINOR);
    REQUIRE(d->name != nullptr);
    CHECK(std::string_view(d->name) == name);
    CHECK(d->version != nullptr);
    CHECK(d->description != nullptr);
    CHECK(d->contact != nullptr);
    REQUIRE(d->license != nullptr);
    CHECK(std::string_view(d->license) == "Apache-2.0");
    CHECK(present(d->init));
    CHECK(present(d->destroy));
    CHECK(present(d->update));
    CHECK(present(d->release_snapshot));
    CHECK(present(d->evaluate_ingress) == ((d->capabilities & KNP_CAP_INGRESS) != 0));
    CHECK(present(d->evaluate_egress) == ((d->capabilities & KNP_CAP_EGRESS) != 0));
    CHECK((d->capabilities & ~uint64_t{KNP_CAP_INGRESS | KNP_CAP_EGRESS}) == 0);
}

}  // namespace

TEST_CASE("c_plugin (C11): descriptor") {
    const knp_plugin_descriptor* d = loadDescriptor("c_plugin");
    checkCommonDescriptor(d, "c_plugin");
    CHECK(d->capabilities == KNP_CAP_INGRESS);
    CHECK_FALSE(present(d->get_watches));
    CHECK(d->config_schema != nullptr);
    d->destroy(nullptr);  // must accept NULL
}

TEST_CASE("fixed (C++ SDK): descriptor") {
    const knp_plugin_descriptor* d = loadDescriptor("fixed");
    checkCommonDescriptor(d, "fixed");
    CHECK(d->capabilities == (KNP_CAP_INGRESS | KNP_CAP_EGRESS));
    d->destroy(nullptr);
}

TEST_CASE("the entry returns the same static descriptor every time") {
    for (const char* name : {"c_plugin", "fixed"}) {
        CAPTURE(name);
        void* h = openPlugin(name);
        CHECK(entry(h) == entry(h));
    }
}

TEST_CASE("plugins export exactly the entry symbol") {
    // Everything but no_entry is linked with sdk/knp-plugin.map, like a shipped plugin.
    for (const char* name : {"c_plugin", "fixed", "watcher", "throws_sdk", "throws_raw", "init_fails"}) {
        CAPTURE(name);
        CHECK(exportedSymbols(name) == std::set<std::string>{"knp_plugin_entry_v1"});
    }
    // Internal symbols stay unreachable even by name.
    void* h = openPlugin("c_plugin");
    CHECK(dlsym(h, "c_plugin_descriptor") == nullptr);
    CHECK(dlsym(h, "c_plugin_init") == nullptr);
}

TEST_CASE("c_plugin: accepts, or denies, ingress to port 7 only") {
    const knp_plugin_descriptor* d = loadDescriptor("c_plugin");
    int32_t rc = -1;

    SUBCASE("default config accepts, declares no interest") {
        Instance i(d, "{}");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        CHECK(i.interest == nullptr);
        knp_eval_result r = i.evaluate(true, tcpPacket(7), nullptr, rc);
        CHECK(rc == KNP_OK);
        CHECK(r.verdict == KNP_VERDICT_ACCEPT);
        CHECK(view(r.reason) == "c_plugin: port 7 accepted");
        r = i.evaluate(true, tcpPacket(8), nullptr, rc);
        CHECK(rc == KNP_OK);
        CHECK(r.verdict == KNP_VERDICT_NEXT);
        CHECK(i.update() == KNP_OK);  // unchanged: no second snapshot needed
    }
    SUBCASE("verdict deny denies and asks for port 7 ingress") {
        Instance i(d, R"({ "verdict" : "deny" })");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        REQUIRE(i.interest != nullptr);
        CHECK(i.interest->egress == nullptr);
        REQUIRE(i.interest->ingress != nullptr);
        CHECK(i.interest->ingress->flags == KNP_INTEREST_DIVERT_ALL);
        REQUIRE(i.interest->ingress->n_dst_ports == 1);
        CHECK(i.interest->ingress->dst_ports[0].first == 7);
        CHECK(i.interest->ingress->dst_ports[0].last == 7);
        CHECK(i.evaluate(true, tcpPacket(7), nullptr, rc).verdict == KNP_VERDICT_DENY);
        CHECK(i.evaluate(true, tcpPacket(443), nullptr, rc).verdict == KNP_VERDICT_NEXT);
    }
    SUBCASE("a bad verdict is a config error at /verdict") {
        Instance i(d, R"({"verdict":"drop"})");
        CHECK(i.initRc == -EINVAL);
        CHECK(std::string_view(i.initError.pointer) == "/verdict");
        CHECK(std::strlen(i.initError.message) > 0);
    }
}

TEST_CASE("fixed: configured verdicts, reasons, dstPort and config errors") {
    const knp_plugin_descriptor* d = loadDescriptor("fixed");
    int32_t rc = -1;

    SUBCASE("deny ingress to one port with a reason owned by the snapshot") {
        Instance i(d, R"({"ingress":"deny","dstPort":80,"reason":"blocked by test"})");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        knp_eval_result r = i.evaluate(true, tcpPacket(80), nullptr, rc);
        CHECK(rc == KNP_OK);
        CHECK(r.verdict == KNP_VERDICT_DENY);
        CHECK(view(r.reason) == "blocked by test");
        CHECK(i.evaluate(true, tcpPacket(81), nullptr, rc).verdict == KNP_VERDICT_NEXT);
        CHECK(i.evaluate(false, tcpPacket(80), nullptr, rc).verdict == KNP_VERDICT_NEXT);
        REQUIRE(i.interest != nullptr);
        REQUIRE(i.interest->ingress != nullptr);
        CHECK((i.interest->ingress->flags & KNP_INTEREST_DIVERT_ALL) != 0);
        CHECK(i.interest->egress == nullptr);
    }
    SUBCASE("accept egress with the default reason; accepting needs no interest") {
        Instance i(d, R"({"egress":"accept"})");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        knp_eval_result r = i.evaluate(false, tcpPacket(1234), nullptr, rc);
        CHECK(r.verdict == KNP_VERDICT_ACCEPT);
        CHECK(view(r.reason) == "fixed accept");
        CHECK(i.evaluate(true, tcpPacket(1234), nullptr, rc).verdict == KNP_VERDICT_NEXT);
        CHECK((i.interest == nullptr || (i.interest->ingress == nullptr && i.interest->egress == nullptr)));
    }
    SUBCASE("config errors carry the JSON pointer of the bad key") {
        struct Case {
            const char* config;
            const char* pointer;
        };
        for (Case c : {Case{R"({"bogus":1})", "/bogus"}, Case{R"({"ingress":"maybe"})", "/ingress"},
                       Case{R"({"egress":1})", "/egress"}, Case{R"({"dstPort":70000})", "/dstPort"},
                       Case{R"({"dstPort":"80"})", "/dstPort"}, Case{R"({"reason":5})", "/reason"}, Case{R"([])", ""},
                       Case{R"({"ingress":)", ""}}) {
            CAPTURE(c.config);
            Instance i(d, c.config);
            CHECK(i.initRc == -EINVAL);
            CHECK(std::string_view(i.initError.pointer) == c.pointer);
            CHECK(std::strlen(i.initError.message) > 0);
        }
    }
}
