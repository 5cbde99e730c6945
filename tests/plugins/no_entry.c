/* no_entry.so — models a shared object that is not a knp plugin: it exports no knp_plugin_entry_v1, only a look-alike (knp_plugin_entry, without the major). */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {RAW_DESCRIPTOR_DEFAULTS("no_entry")};

RAW_EXPORT const knp_plugin_descriptor *knp_plugin_entry(void) { return &descriptor; }
