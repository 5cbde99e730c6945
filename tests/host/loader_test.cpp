// The loader refuses every broken plugin with one line naming the file and the reason, before
// calling any of its code; good plugins load, and one library serves several instances.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "helpers.hpp"
#include "plugins/library.hpp"

using namespace knp::host;
using namespace knp::host::test;
namespace fs = std::filesystem;

namespace {
void requireOneLine(const std::string& m) {
    CHECK(m.find('\n') == std::string::npos);
    CHECK(!m.empty());
}
std::string loadError(const std::string& plugin) {
    auto r = loadPluginLibrary(testPlugin(plugin), FileTrustPolicy{});
    REQUIRE_FALSE(r.ok());
    requireOneLine(r.error().message);
    CHECK(r.error().message.find(plugin + ".so") != std::string::npos);  // names the file
    return r.error().message;
}
}  // namespace

TEST_CASE("broken libraries are refused with a one-line reason") {
    struct Case {
        const char* plugin;
        const char* reason;
    };
    const Case cases[] = {
        {"no_entry", "no entry symbol knp_plugin_entry_v1"},
        {"null_descriptor", "entry point returned no descriptor"},
        {"wrong_major", "major mismatch"},
        {"newer_minor", "newer than this host"},
        {"short_descriptor", "struct_size"},
        {"null_function", "descriptor function update is NULL"},
        {"missing_eval", "evaluate_ingress is NULL"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.plugin);
        std::string m = loadError(c.plugin);
        CAPTURE(m);
        CHECK(m.find(c.reason) != std::string::npos);
    }
}

TEST_CASE("a missing file is named with the search path") {
    PluginSearchPath sp{{"/nonexistent-a", "/nonexistent-b"}};
    auto r = resolveLibrary("nope", sp, "");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("\"nope\" not found") != std::string::npos);
    CHECK(r.error().message.find("/nonexistent-a:/nonexistent-b") != std::string::npos);
    auto byPath = resolveLibrary("./missing.so", sp, "/tmp");
    REQUIRE_FALSE(byPath.ok());
    CHECK(byPath.error().message.find("/tmp/./missing.so: no such plugin file") != std::string::npos);
}

TEST_CASE("bare names resolve in search-path order, with or without .so") {
    TempDir a, b;
    fs::copy_file(testPlugin("fixed"), b.path / "fixed.so");
    fs::copy_file(testPlugin("c_plugin"), a.path / "fixed.so");
    PluginSearchPath sp{{a.path.string(), b.path.string()}};
    auto r = resolveLibrary("fixed", sp, "");
    REQUIRE(r.ok());
    CHECK(*r == (a.path / "fixed.so").string());
    auto r2 = resolveLibrary("fixed.so", PluginSearchPath{{b.path.string()}}, "");
    REQUIRE(r2.ok());
    CHECK(*r2 == (b.path / "fixed.so").string());
}

TEST_CASE("the build tree's plugins are on the search path when run from the build tree") {
    auto sp = PluginSearchPath::standard({"/first"});
    REQUIRE(sp.dirs.size() >= 3);
    CHECK(sp.dirs.front() == "/first");
    CHECK(std::find(sp.dirs.begin(), sp.dirs.end(), KNP_BUILD_PLUGINDIR) != sp.dirs.end());
    CHECK(sp.dirs.back() == KNP_PLUGINDIR);
}

TEST_CASE("KNP_PLUGIN_PATH entries come after --plugin-dir") {
    ::setenv("KNP_PLUGIN_PATH", "/env-a::/env-b", 1);
    auto sp = PluginSearchPath::standard({"/cli"});
    ::unsetenv("KNP_PLUGIN_PATH");
    REQUIRE(sp.dirs.size() >= 4);
    CHECK(sp.dirs[0] == "/cli");
    CHECK(sp.dirs[1] == "/env-a");
    CHECK(sp.dirs[2] == "/env-b");
}

TEST_CASE("plugins anyone but the owner could have written are refused when enforcing") {
    TempDir dir;
    ::chmod(dir.path.c_str(), 0755);
    fs::path so = dir.path / "fixed.so";
    fs::copy_file(testPlugin("fixed"), so);
    // As root the loader enforces ownership by root; the test trusts its own uid so that it
    // means the same whoever runs it.
    FileTrustPolicy strict{true, ::geteuid()};

    ::chmod(so.c_str(), 0644);
    CHECK(checkFileTrust(so.string(), strict).ok());

    ::chmod(so.c_str(), 0664);
    auto groupWritable = checkFileTrust(so.string(), strict);
    REQUIRE_FALSE(groupWritable.ok());
    CHECK(groupWritable.error().message.find("writable by group or others") != std::string::npos);
    CHECK(groupWritable.error().message.find("fixed.so") != std::string::npos);

    ::chmod(so.c_str(), 0644);
    ::chmod(dir.path.c_str(), 0777);
    auto dirWritable = checkFileTrust(so.string(), strict);
    REQUIRE_FALSE(dirWritable.ok());
    CHECK(dirWritable.error().message.find(dir.path.string() + " is writable") != std::string::npos);
    ::chmod(dir.path.c_str(), 0755);

    // The loader itself refuses before running any plugin code.
    ::chmod(so.c_str(), 0646);
    auto loaded = loadPluginLibrary(so.string(), strict);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().message.find("refusing to load") != std::string::npos);

    if (::geteuid() == 0) {
        // Owned by someone else (nobody) while running as root.
        ::chmod(so.c_str(), 0644);
        REQUIRE(::chown(so.c_str(), 65534, 65534) == 0);
        auto foreign = checkFileTrust(so.string(), FileTrustPolicy{true, 0});
        REQUIRE_FALSE(foreign.ok());
        CHECK(foreign.error().message.find("owned by uid 65534") != std::string::npos);
    }
}

TEST_CASE("not enforcing (non-root) accepts any permissions") {
    TempDir dir;
    fs::path so = dir.path / "fixed.so";
    fs::copy_file(testPlugin("fixed"), so);
    ::chmod(so.c_str(), 0666);
    CHECK(checkFileTrust(so.string(), FileTrustPolicy{false, 0}).ok());
}

TEST_CASE("a pure C plugin and an SDK plugin load and validate") {
    for (const char* name : {"c_plugin", "fixed", "watcher"}) {
        CAPTURE(name);
        auto r = loadPluginLibrary(testPlugin(name), FileTrustPolicy{});
        REQUIRE(r.ok());
        CHECK((*r)->descriptor->abi_major == KNP_ABI_MAJOR);
    }
    // Loading twice returns the same library.
    auto a = loadPluginLibrary(testPlugin("fixed"), FileTrustPolicy{});
    auto b = loadPluginLibrary(testPlugin("fixed"), FileTrustPolicy{});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
}

TEST_CASE("init failures name the pipeline line, the instance and the config key") {
    auto r = loadPipelineText(
        "  - name: ok\n"
        "    library: fixed\n"
        "  - name: bad\n"
        "    library: init_fails\n"
        "    config:\n"
        "      threshold: 7\n");
    REQUIRE_FALSE(r.ok());
    const std::string& m = r.error().message;
    CAPTURE(m);
    requireOneLine(m);
    CHECK(m.find("pipeline.yaml:9:") == 0);  // the line of `threshold`
    CHECK(m.find("instances[1] (\"bad\")") != std::string::npos);
    CHECK(m.find("config/threshold") != std::string::npos);
}

TEST_CASE("exceptions thrown out of init are caught at the ABI boundary") {
    for (const char* lib : {"throws_raw", "throws_sdk"}) {
        CAPTURE(lib);
        auto r = loadPipelineText(fmt::format("  - name: t\n    library: {}\n    config: {{in: init}}\n", lib));
        REQUIRE_FALSE(r.ok());
        CAPTURE(r.error().message);
        requireOneLine(r.error().message);
        CHECK(r.error().message.find("pipeline.yaml:4: instances[0] (\"t\")") == 0);
    }
}

TEST_CASE("an invalid plugin config is refused with the key's line") {
    auto r = loadPipelineText(
        "  - name: f\n"
        "    library: fixed\n"
        "    config:\n"
        "      ingress: sometimes\n");
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message);
    CHECK(r.error().message.find("pipeline.yaml:7:") == 0);
    CHECK(r.error().message.find("config/ingress") != std::string::npos);
}

TEST_CASE("the same library serves two instances with different configs") {
    auto r = loadPipelineText(
        "  - name: one\n"
        "    library: fixed\n"
        "    config: {ingress: deny}\n"
        "  - name: two\n"
        "    library: fixed\n"
        "    config: {ingress: accept}\n");
    REQUIRE(r.ok());
    auto& p = **r;
    REQUIRE(p.instances().size() == 2);
    CHECK(&p.instances()[0]->library() == &p.instances()[1]->library());
    CHECK(p.instances()[0]->name() == "one");
    CHECK(p.instances()[1]->name() == "two");
}
