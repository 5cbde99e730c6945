// Tests of the test plugins themselves: each defect plugin has exactly the defect its loader
// test relies on (and is otherwise valid), and the SDK fixtures behave as documented. Without
// this a fixture could silently become valid and a loader test pass for the wrong reason.
#include "plugin_abi.hpp"

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace abi_test;

namespace {

// The parts of a valid descriptor a defect plugin keeps (everything but its one defect).
void checkOtherwiseValid(const knp_plugin_descriptor* d) {
    CHECK(d->name != nullptr);
    CHECK(present(d->init));
    CHECK(present(d->destroy));
    CHECK(present(d->release_snapshot));
}

knp_event event(uint32_t type, uint32_t watch, std::string_view ns, std::string_view name) {
    knp_event e{};
    e.struct_size = sizeof e;
    e.type = type;
    e.watch_index = watch;
    e.object = str("{}");
    e.object_namespace = str(ns);
    e.name = str(name);
    return e;
}

}  // namespace

TEST_CASE("no_entry: no v1 entry, only a look-alike") {
    void* h = openPlugin("no_entry");
    CHECK(dlsym(h, KNP_PLUGIN_ENTRY_SYMBOL) == nullptr);
    CHECK(dlsym(h, "knp_plugin_entry") != nullptr);
}

TEST_CASE("null_descriptor: the entry returns NULL") { CHECK(entry(openPlugin("null_descriptor")) == nullptr); }

TEST_CASE("version defects") {
    const knp_plugin_descriptor* major = loadDescriptor("wrong_major");
    CHECK(major->abi_major == KNP_ABI_MAJOR + 1);
    CHECK(major->struct_size == sizeof(knp_plugin_descriptor));
    checkOtherwiseValid(major);

    const knp_plugin_descriptor* minor = loadDescriptor("newer_minor");
    CHECK(minor->abi_major == KNP_ABI_MAJOR);
    CHECK(minor->abi_minor == KNP_ABI_MINOR + 1);
    checkOtherwiseValid(minor);

    const knp_plugin_descriptor* shrt = loadDescriptor("short_descriptor");
    CHECK(shrt->struct_size < sizeof(knp_plugin_descriptor));
    CHECK(shrt->abi_major == KNP_ABI_MAJOR);
    checkOtherwiseValid(shrt);
}

TEST_CASE("function-table defects") {
    const knp_plugin_descriptor* nf = loadDescriptor("null_function");
    CHECK_FALSE(present(nf->update));
    CHECK(present(nf->evaluate_ingress));
    checkOtherwiseValid(nf);

    const knp_plugin_descriptor* me = loadDescriptor("missing_eval");
    CHECK(me->capabilities == KNP_CAP_INGRESS);
    CHECK_FALSE(present(me->evaluate_ingress));
    CHECK(present(me->update));
    checkOtherwiseValid(me);
}

TEST_CASE("init_fails: -EINVAL, a message and /threshold; NULL or tiny buffers are safe") {
    const knp_plugin_descriptor* d = loadDescriptor("init_fails");
    {
        Instance i(d, "{}");
        CHECK(i.initRc == -EINVAL);
        CHECK(std::string_view(i.initError.message).find("threshold") != std::string_view::npos);
        CHECK(std::string_view(i.initError.pointer) == "/threshold");
    }
    knp_plugin* p = nullptr;
    knp_init_args a{};
    a.struct_size = sizeof a;
    CHECK(d->init(&a, &p, nullptr) == -EINVAL);
    char msg[4] = {'x', 'x', 'x', 'x'};
    knp_error tiny{sizeof(knp_error), 0, msg, sizeof msg, nullptr, 0};
    CHECK(d->init(&a, &p, &tiny) == -EINVAL);
    CHECK(std::string_view(msg) == "thr");
}

TEST_CASE("out_of_range: success with verdict 7") {
    Instance i(loadDescriptor("out_of_range"), "{}");
    REQUIRE(i.initRc == KNP_OK);
    REQUIRE(i.update() == KNP_OK);
    int32_t rc = -1;
    CHECK(i.evaluate(true, tcpPacket(80), nullptr, rc).verdict == 7);
    CHECK(rc == KNP_OK);
}

TEST_CASE("throws_raw: an exception escapes where configured") {
    const knp_plugin_descriptor* d = loadDescriptor("throws_raw");
    int32_t rc = 0;
    CHECK_THROWS_AS(Instance(d, "{}"), std::runtime_error);
    CHECK_THROWS_AS(Instance(d, R"({"in":"init"})"), std::runtime_error);
    {
        Instance i(d, R"({"in":"update"})");
        REQUIRE(i.initRc == KNP_OK);
        CHECK_THROWS_AS(i.update(), std::runtime_error);
    }
    {
        Instance i(d, R"({"in":"evaluate"})");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        CHECK_THROWS_AS(i.evaluate(true, tcpPacket(80), nullptr, rc), std::runtime_error);
        CHECK_THROWS_AS(i.evaluate(false, tcpPacket(80), nullptr, rc), std::runtime_error);
    }
    Instance bad(d, R"({"in":"nowhere"})");
    CHECK(bad.initRc == -EINVAL);
    CHECK(std::string_view(bad.initError.pointer) == "/in");
}

TEST_CASE("throws_sdk: the SDK turns every exception into an error value") {
    const knp_plugin_descriptor* d = loadDescriptor("throws_sdk");
    int32_t rc = 0;
    {
        Instance i(d, "{}");
        CHECK(i.initRc < 0);
        CHECK(std::string_view(i.initError.message) == "throws_sdk: constructor threw");
    }
    {
        Instance i(d, R"({"in":"update"})");
        REQUIRE(i.initRc == KNP_OK);
        CHECK(i.update() < 0);
        CHECK(std::string_view(i.updateError.message) == "throws_sdk: update threw");
    }
    {
        Instance i(d, R"({"in":"evaluate"})");
        REQUIRE(i.initRc == KNP_OK);
        REQUIRE(i.update() == KNP_OK);
        i.evaluate(true, tcpPacket(80), nullptr, rc);
        CHECK(rc < 0);
        i.evaluate(false, tcpPacket(80), nullptr, rc);
        CHECK(rc < 0);
    }
    Instance bad(d, R"({"in":"nowhere"})");
    CHECK(bad.initRc == -EINVAL);
    CHECK(std::string_view(bad.initError.pointer) == "/in");
}

TEST_CASE("watcher: two watches, counts objects per watch, denies watcher=deny pods") {
    const knp_plugin_descriptor* d = loadDescriptor("watcher");
    CHECK(d->capabilities == KNP_CAP_INGRESS);
    Instance i(d, "{}");
    REQUIRE(i.initRc == KNP_OK);

    std::vector<const knp_watch*> w = i.watches();
    REQUIRE(w.size() == 2);
    CHECK(w[0]->struct_size == sizeof(knp_watch));
    CHECK(view(w[0]->group) == "networking.k8s.io");
    CHECK(view(w[0]->version) == "v1");
    CHECK(view(w[0]->resource) == "networkpolicies");
    CHECK(view(w[0]->kind) == "NetworkPolicy");
    CHECK(view(w[1]->group) == "example.com");
    CHECK(view(w[1]->resource) == "widgets");
    CHECK(view(w[1]->kind) == "Widget");
    CHECK(view(w[1]->watch_namespace).empty());

    REQUIRE(i.update({event(KNP_EVENT_ADDED, 0, "shop", "deny-all"), event(KNP_EVENT_ADDED, 0, "shop", "allow-web"),
                      event(KNP_EVENT_ADDED, 1, "", "w1"), event(KNP_EVENT_ADDED, 1, "", "w2"),
                      event(KNP_EVENT_MODIFIED, 1, "", "w2"), event(KNP_EVENT_DELETED, 1, "", "w1"),
                      event(KNP_EVENT_SYNCED, 0, "", ""), event(KNP_EVENT_SYNCED, 1, "", "")}) == KNP_OK);
    REQUIRE(!i.host.logs.empty());
    CHECK(i.host.logs.back().find("widgets=1 policies=2") != std::string::npos);

    knp_label labels[] = {{str("app"), str("web")}, {str("watcher"), str("deny")}};
    knp_pod pod{};
    pod.struct_size = sizeof pod;
    pod.name = str("web-1");
    pod.pod_namespace = str("shop");
    pod.labels = labels;
    pod.n_labels = 2;
    int32_t rc = -1;
    knp_eval_result r = i.evaluate(true, tcpPacket(80), &pod, rc);
    CHECK(rc == KNP_OK);
    CHECK(r.verdict == KNP_VERDICT_DENY);
    CHECK(view(r.reason) == "widgets=1 policies=2");

    pod.n_labels = 1;  // app=web only
    CHECK(i.evaluate(true, tcpPacket(80), &pod, rc).verdict == KNP_VERDICT_NEXT);
    CHECK(i.evaluate(true, tcpPacket(80), nullptr, rc).verdict == KNP_VERDICT_NEXT);
}
