// Finding, vetting and loading plugin shared objects (Boost.DLL).
//
// THREAD: control thread only. Loaded libraries are never unloaded while the process runs
// (RTLD_NODELETE), so no code a snapshot or a data thread may still reach can disappear.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"

namespace knp::host {

// Where bare library names ("allowlist") are looked up, in order: --plugin-dir flags,
// KNP_PLUGIN_PATH (colon-separated), the build tree's plugins when this binary runs from the
// build tree, and the installed plugin directory (/usr/lib/knp/plugins).
struct PluginSearchPath {
    std::vector<std::string> dirs;

    static PluginSearchPath standard(const std::vector<std::string>& cliDirs);
    std::string describe() const;  // "a:b:c"
};

// Resolves a pipeline `library` value. A value with a '/' is a path (relative to `baseDir`,
// the pipeline file's directory); otherwise NAME or NAME.so in the search path.
Result<std::string> resolveLibrary(std::string_view library, const PluginSearchPath& path, const std::string& baseDir);

// Running as root, a plugin runs with root's powers: refuse files anyone else could have
// written. The file and its directory must be owned by root (or `trustedUid`) and not be
// writable by group or others; every ancestor directory likewise unless it is sticky (/tmp).
struct FileTrustPolicy {
    bool enforce = false;
    uid_t trustedUid = 0;

    // Enforced when running as root, as the loader does by default.
    static FileTrustPolicy forThisProcess();
};
Status checkFileTrust(const std::string& path, const FileTrustPolicy& policy);

// A loaded, validated plugin library.
struct PluginLibrary {
    std::string path;  // canonical
    const knp_plugin_descriptor* descriptor = nullptr;
};

// Checks a descriptor before any plugin function is called: size, ABI major/minor, required
// functions, capabilities. Errors are one line without the file name.
Status validateDescriptor(const knp_plugin_descriptor* d);

// Loads (or returns the already loaded) library at `path` and validates its descriptor.
// Errors are one line: "<path>: <reason>".
Result<const PluginLibrary*> loadPluginLibrary(const std::string& path, const FileTrustPolicy& policy);

// Human-readable capability list ("ingress,egress").
std::string describeCapabilities(uint64_t caps);

}  // namespace knp::host
