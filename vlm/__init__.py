"""Vision-language model code: the family registry, the loading layer, tiny offline models, training.

Importing ``vlm`` costs nothing (no torch); it only silences one harmless upstream log line:
bitsandbytes' CPU back-end warns at import, on every command, that the optional ``kernels``
package (a Hub-downloaded fast path for AVX512-BF16 CPUs) is missing. The plain kernel is used and
results are the same, so the line is noise; any other bitsandbytes warning still shows.
"""

import logging


class _DropKernelsHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropKernelsHint())
