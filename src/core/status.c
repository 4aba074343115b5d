/* Text for status codes, dtypes and backends: every table comes from one X-macro list. */
#include "llamac.h"

const char *llm_strerror(llm_status status) {
    switch (status) {
#define LLM_STATUS_TEXT_(name, value, text)                                                                  \
    case name:                                                                                               \
        return text;
        LLM_STATUS_TABLE(LLM_STATUS_TEXT_)
#undef LLM_STATUS_TEXT_
    }
    return "unknown status";
}

const char *llm_status_name(llm_status status) {
    switch (status) {
#define LLM_STATUS_NAME_(name, value, text)                                                                  \
    case name:                                                                                               \
        return #name;
        LLM_STATUS_TABLE(LLM_STATUS_NAME_)
#undef LLM_STATUS_NAME_
    }
    return "LLM_STATUS_UNKNOWN";
}

const char *llm_dtype_name(llm_dtype dtype) {
    switch (dtype) {
    case LLM_DTYPE_F32:
        return "F32";
    case LLM_DTYPE_F16:
        return "F16";
    case LLM_DTYPE_BF16:
        return "BF16";
    case LLM_DTYPE_Q8_0:
        return "Q8_0";
    case LLM_DTYPE_Q4_K:
        return "Q4_K";
    case LLM_DTYPE_COUNT:
        break;
    }
    return "?";
}

const char *llm_backend_name(llm_backend_kind kind) {
    switch (kind) {
    case LLM_BACKEND_AUTO:
        return "auto";
    case LLM_BACKEND_CPU:
        return "cpu";
    case LLM_BACKEND_CUDA:
        return "cuda";
    }
    return "?";
}
