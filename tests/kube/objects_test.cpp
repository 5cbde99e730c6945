// Targets, managedFields stripping, and the mark-and-sweep cache.
#include <boost/json.hpp>
#include <doctest/doctest.h>

#include "kube/objects.hpp"

using namespace knp::host::kube;
namespace json = boost::json;

namespace {

DecodedObject obj(std::string ns, std::string name, std::string rv, std::string extra = "") {
    json::object o = json::parse(R"({"metadata":{"name":")" + name + R"(","namespace":")" + ns +
                                 R"(","resourceVersion":")" + rv + R"("},"spec":{"x":")" + extra + R"("}})")
                         .as_object();
    auto d = decodeObject(o, "v1", "Pod");
    REQUIRE(d.ok());
    return std::move(*d);
}

}  // namespace

TEST_CASE("WatchTarget: paths, parse, describe") {
    WatchTarget pods;
    pods.version = "v1";
    pods.resource = "pods";
    pods.kind = "Pod";
    CHECK(pods.path() == "/api/v1/pods");
    CHECK(pods.apiVersion() == "v1");
    WatchTarget np{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "prod", "a=b", "metadata.name=x"};
    CHECK(np.path() == "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies");
    CHECK(np.apiVersion() == "networking.k8s.io/v1");
    CHECK(np.describe() ==
          "networking.k8s.io/v1/networkpolicies ns=\"prod\" labels=\"a=b\" fields=\"metadata.name=x\"");
    auto p = WatchTarget::parse("v1/pods");
    REQUIRE(p.ok());
    CHECK(p->group.empty());
    CHECK(p->version == "v1");
    CHECK(p->resource == "pods");
    p = WatchTarget::parse("policy.networking.k8s.io/v1alpha1/adminnetworkpolicies");
    REQUIRE(p.ok());
    CHECK(p->group == "policy.networking.k8s.io");
    CHECK(WatchTarget::parse("core/v1/nodes")->group.empty());
    CHECK_FALSE(WatchTarget::parse("pods").ok());
    CHECK_FALSE(WatchTarget::parse("a/b/c/d").ok());
    CHECK_FALSE(WatchTarget::parse("v1/Pods").ok());
    CHECK_FALSE(WatchTarget::parse("v1/").ok());
}

TEST_CASE("queryEscape") {
    CHECK(queryEscape("app in (a,b),!x") == "app%20in%20%28a%2Cb%29%2C%21x");
    CHECK(queryEscape("a-b_c.d~") == "a-b_c.d~");
    CHECK(queryEscape("k=v&z") == "k%3Dv%26z");
}

TEST_CASE("managedFields is stripped; list items get apiVersion and kind") {
    json::object o = json::parse(R"({"metadata":{"name":"p","namespace":"n","resourceVersion":"7",
        "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},"spec":{}})")
                         .as_object();
    auto d = decodeObject(o, "v1", "Pod");
    REQUIRE(d.ok());
    CHECK(d->ns == "n");
    CHECK(d->name == "p");
    CHECK(d->resourceVersion == "7");
    json::object back = json::parse(*d->json).as_object();
    CHECK_FALSE(back.at("metadata").as_object().contains("managedFields"));
    CHECK(back.at("apiVersion") == "v1");
    CHECK(back.at("kind") == "Pod");
    CHECK(d->json->find("managedFields") == std::string::npos);

    // Present apiVersion/kind are kept.
    json::object w = json::parse(R"({"apiVersion":"x/v2","kind":"Y","metadata":{"name":"q"}})").as_object();
    auto e = decodeObject(w, "v1", "Pod");
    REQUIRE(e.ok());
    CHECK(json::parse(*e->json).at("kind") == "Y");
    CHECK(e->ns.empty());

    json::object bad = json::parse(R"({"metadata":{"namespace":"n"}})").as_object();
    CHECK(decodeObject(bad, "v1", "Pod").error().message == "object without metadata.name");
    json::object none = json::parse(R"({"spec":{}})").as_object();
    CHECK(decodeObject(none, "v1", "Pod").error().message == "object without metadata");

    json::object plain = json::parse(R"({"metadata":{"name":"p"}})").as_object();
    CHECK_FALSE(stripManagedFields(plain));
}

TEST_CASE("ObjectCache: watch events are delivered once each") {
    ObjectCache c;
    auto e = c.apply(KNP_EVENT_ADDED, obj("n", "a", "1"));
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_ADDED);
    CHECK(e->ns == "n");
    CHECK(e->name == "a");
    CHECK(e->resourceVersion == "1");
    CHECK_FALSE(c.apply(KNP_EVENT_ADDED, obj("n", "a", "1")));  // a replayed event
    e = c.apply(KNP_EVENT_ADDED, obj("n", "a", "2"));           // known: a change
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_MODIFIED);
    e = c.apply(KNP_EVENT_MODIFIED, obj("n", "b", "3"));  // unknown: new
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_ADDED);
    e = c.apply(KNP_EVENT_DELETED, obj("n", "a", "4"));
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_DELETED);
    CHECK_FALSE(c.apply(KNP_EVENT_DELETED, obj("n", "a", "4")));  // already gone
    CHECK(c.size() == 1);
    CHECK(c.contains("n", "b"));
}

TEST_CASE("ObjectCache: a relist delivers the differences, deletions in the gap as DELETED") {
    ObjectCache c;
    for (auto name : {"keep", "change", "gone1", "gone2"}) REQUIRE(c.apply(KNP_EVENT_ADDED, obj("n", name, "1", name)));
    REQUIRE(c.apply(KNP_EVENT_ADDED, obj("", "cluster-scoped", "1")));

    c.beginRelist();
    CHECK_FALSE(c.listed(obj("n", "keep", "1", "keep")));  // unchanged: nothing
    auto e = c.listed(obj("n", "change", "5", "new"));
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_MODIFIED);
    CHECK(json::parse(e->json()).at("spec").at("x") == "new");
    e = c.listed(obj("n", "fresh", "6"));
    REQUIRE(e);
    CHECK(e->type == KNP_EVENT_ADDED);
    auto gone = c.sweep();
    REQUIRE(gone.size() == 3);
    CHECK(gone[0].ns == "");
    CHECK(gone[0].name == "cluster-scoped");
    CHECK(gone[1].name == "gone1");
    CHECK(gone[2].name == "gone2");
    for (const auto& g : gone) {
        CHECK(g.type == KNP_EVENT_DELETED);
        // The last known state goes with the deletion.
        CHECK(json::parse(g.json()).at("metadata").at("name").as_string() == g.name);
    }
    CHECK(gone[1].resourceVersion == "1");
    CHECK(c.size() == 3);

    // A second relist that sees everything deletes nothing.
    c.beginRelist();
    for (auto name : {"keep", "fresh"}) c.listed(obj("n", name, name == std::string("keep") ? "1" : "6"));
    c.listed(obj("n", "change", "5", "new"));
    CHECK(c.sweep().empty());

    // An empty relist (the resource vanished) deletes everything.
    c.beginRelist();
    CHECK(c.sweep().size() == 3);
    CHECK(c.size() == 0);
}

TEST_CASE("ObjectCache: the object string is shared with the event, not copied") {
    ObjectCache c;
    DecodedObject d = obj("n", "a", "1");
    const std::string* p = d.json.get();
    auto e = c.apply(KNP_EVENT_ADDED, std::move(d));
    REQUIRE(e);
    CHECK(e->object.get() == p);
    c.beginRelist();
    auto gone = c.sweep();
    REQUIRE(gone.size() == 1);
    CHECK(gone[0].object.get() == p);
}

TEST_CASE("event type names") {
    CHECK(std::string(eventTypeName(KNP_EVENT_RELIST)) == "RELIST");
    CHECK(std::string(eventTypeName(99)) == "UNKNOWN");
}

TEST_CASE("ObjectCache: metadata retention keeps a tombstone, delivers whole objects") {
    ObjectCache c(ObjectRetention::Metadata);
    json::object o = json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"n",
        "resourceVersion":"1","labels":{"app":"x"},"annotations":{"big":"yyyyyyyy"},"managedFields":[{}]},
        "spec":{"containers":[{"name":"c"}]}})")
                         .as_object();
    auto d = decodeObject(o, "v1", "Pod", ObjectRetention::Metadata);
    REQUIRE(d.ok());
    REQUIRE(d->tombstone);
    auto e = c.apply(KNP_EVENT_ADDED, std::move(*d));
    REQUIRE(e);
    CHECK(json::parse(e->json()).as_object().contains("spec"));  // consumers get everything
    c.beginRelist();
    auto gone = c.sweep();
    REQUIRE(gone.size() == 1);
    json::object t = json::parse(gone[0].json()).as_object();
    CHECK(t.at("kind") == "Pod");
    CHECK(t.at("apiVersion") == "v1");
    CHECK_FALSE(t.contains("spec"));
    const json::object& md = t.at("metadata").as_object();
    CHECK(md.at("name") == "a");
    CHECK(md.at("labels").at("app") == "x");
    CHECK_FALSE(md.contains("annotations"));
    CHECK_FALSE(md.contains("managedFields"));
}
