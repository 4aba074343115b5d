/* llama-cli bench --concurrency on the bundled demo model: one JSON object per level with the fields
 * the issue names, sane values, and bad levels refused with one error line. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "test_util.h"

int main(void) {
    char *dir = tu_make_temp_dir();
    if (!dir) return 1;
    char *out, *err;
    int rc = tu_run_cli(dir, "bench --concurrency 1,3 --prompt 8 --gen 6 --json", NULL, &out, NULL, &err);
    TU_CHECK(rc == 0, "exit %d: %s", rc, err ? err : "");
    TU_CHECK(tu_count_lines(out) == 2, "two JSON lines expected: %s", out ? out : "");
    const char *line = out;
    static const int levels[2] = {1, 3};
    for (int i = 0; i < 2 && line && *line; i++) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        llm_json_doc *doc = NULL;
        char jerr[256];
        TU_CHECK(llm_json_parse(line, len, &doc, jerr, sizeof jerr) == 0, "line %d: %s", i, jerr);
        const llm_json *o = llm_json_root(doc);
        int64_t c = 0;
        TU_CHECK(llm_json_int64(llm_json_get(o, "concurrency"), &c) == 0 && c == levels[i],
                 "concurrency %lld", (long long)c);
        const double agg = llm_json_number(llm_json_get(o, "aggregate_tok_s"));
        const double t50 = llm_json_number(llm_json_get(o, "ttft_p50_ms")),
                     t99 = llm_json_number(llm_json_get(o, "ttft_p99_ms"));
        const double i50 = llm_json_number(llm_json_get(o, "itl_p50_ms")),
                     i99 = llm_json_number(llm_json_get(o, "itl_p99_ms"));
        TU_CHECK(agg > 0 && t50 > 0 && t99 >= t50 && i50 > 0 && i99 >= i50,
                 "level %d: aggregate %g, ttft %g/%g, itl %g/%g", levels[i], agg, t50, t99, i50, i99);
        llm_json_doc_free(doc);
        line = nl ? nl + 1 : NULL;
    }
    free(out);
    free(err);
    tu_expect_cli_error(dir, "bench --concurrency 0", "--concurrency");
    tu_expect_cli_error(dir, "bench --concurrency 1,x", "--concurrency");
    tu_remove_dir(dir);
    free(dir);
    return tu_finish("test_bench_concurrency");
}
