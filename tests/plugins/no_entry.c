/* no_entry.so — models a library that is no knp plugin: no knp_plugin_entry_v1, only a look-alike symbol. */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {RAW_DESCRIPTOR_DEFAULTS("no_entry")};

RAW_EXPORT const knp_plugin_descriptor* knp_plugin_entry(void) { return &descriptor; }
