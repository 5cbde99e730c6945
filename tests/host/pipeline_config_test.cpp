// pipeline.yaml errors name file:line and the field; nothing is half-loaded.
#include "helpers.hpp"

using namespace knp::host;
using namespace knp::host::test;

namespace {
std::string parseError(const std::string& text) {
    auto r = parsePipelineText(text, "p.yaml", "");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find('\n') == std::string::npos);
    return r.error().message;
}
const std::string kHead = "apiVersion: knp.dev/v1alpha1\nkind: Pipeline\n";
}  // namespace

TEST_CASE("a valid pipeline keeps order, defaults and config as JSON") {
    auto r =
        parsePipelineText(kHead +
                              "defaults:\n  onError: next\n"
                              "instances:\n"
                              "  - name: b\n    library: fixed\n    config:\n      ingress: deny\n      dstPort: 22\n"
                              "  - name: a\n    library: ./x/fixed.so\n    onError: accept\n    enabled: false\n",
                          "p.yaml", "/etc/knp");
    REQUIRE(r.ok());
    REQUIRE(r->instances.size() == 2);
    CHECK(r->instances[0].name == "b");
    CHECK(r->instances[0].onError == OnError::Next);
    CHECK(r->instances[0].configJson == R"({"ingress":"deny","dstPort":22})");
    CHECK(r->instances[0].line == 6);
    CHECK(r->instances[1].onError == OnError::Accept);
    CHECK_FALSE(r->instances[1].enabled);
    CHECK(r->instances[1].configJson == "{}");
}

TEST_CASE("pipeline.yaml errors name the line and the field") {
    struct Case {
        std::string text;
        std::string expected;
    };
    const Case cases[] = {
        {"apiVersion: v1\nkind: Pipeline\ninstances: []\n", "p.yaml:1: apiVersion: must be \"knp.dev/v1alpha1\""},
        {"apiVersion: knp.dev/v1alpha1\nkind: Pipe\ninstances: []\n", "p.yaml:2: kind: must be \"Pipeline\""},
        {kHead, "instances: missing"},
        {kHead + "instances: 3\n", "p.yaml:3: instances: must be a list"},
        {kHead + "instances:\n  - library: fixed\n", "p.yaml:4: instances[0].name: missing"},
        {kHead + "instances:\n  - name: Bad_Name\n    library: fixed\n", "p.yaml:4: instances[0].name: \"Bad_Name\""},
        {kHead + "instances:\n  - name: a\n", "p.yaml:4: instances[0].library: missing"},
        {kHead + "instances:\n  - name: a\n    library: fixed\n  - name: a\n    library: fixed\n",
         "p.yaml:6: instances[1].name: duplicate instance name \"a\""},
        {kHead + "instances:\n  - name: a\n    library: fixed\n    onError: maybe\n",
         "p.yaml:6: instances[0].onError: \"maybe\" is not one of deny, accept, next"},
        {kHead + "instances:\n  - name: a\n    library: fixed\n    enabled: yes\n",
         "p.yaml:6: instances[0].enabled: must be true or false"},
        {kHead + "instances:\n  - name: a\n    library: fixed\n    onerror: deny\n",
         "p.yaml:6: instances[0].\"onerror\": unknown field"},
        {kHead + "instances:\n  - name: a\n    library: fixed\n    config: [1]\n",
         "p.yaml:6: instances[0].config: must be a mapping"},
        {kHead + "defaults: {onError: never}\ninstances: []\n", "p.yaml:3: defaults.onError: \"never\""},
        {kHead + "instances: [\n", "p.yaml:4:"},
        {kHead + "instances: []\n---\n" + kHead + "instances: []\n", "expected exactly one YAML document, found 2"},
        {kHead + "extra: 1\ninstances: []\n", "p.yaml:3: \"extra\": unknown field"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        std::string m = parseError(c.text);
        CAPTURE(m);
        CHECK(m.find(c.expected) != std::string::npos);
    }
}

TEST_CASE("a missing pipeline file is one line") {
    auto r = parsePipelineFile("/nonexistent/pipeline.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "/nonexistent/pipeline.yaml: cannot open: No such file or directory");
}

TEST_CASE("a library that cannot be found names the pipeline line") {
    auto r = loadPipelineText("  - name: a\n    library: does-not-exist\n");
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message);
    CHECK(r.error().message.find(
              "pipeline.yaml:4: instances[0] (\"a\"): library: plugin \"does-not-exist\" not found") == 0);
}

TEST_CASE("the shipped default pipeline parses") {
    auto r = parsePipelineFile(std::string(KNP_SOURCE_ROOT) + "/config/pipeline.yaml");
    REQUIRE(r.ok());
}
