/* null_descriptor.so — models an entry point that returns NULL instead of a descriptor. */
#include "raw_plugin.h"

RAW_PLUGIN_ENTRY(NULL)
