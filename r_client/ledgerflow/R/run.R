#' Run a flow, or any other command of its command line
#'
#' The last link of a flow. From `Rscript myflow.R ARGS`, runs the flow's command line
#' with `ARGS` (`run`, `show`, `resume b`, `run --max-workers 4 --alpha 0.5`, `--help`;
#' no arguments: `run`), through the Ledgerflow runtime in Python, which runs each step
#' in R. The graph is checked first. When the runtime itself loads the script, `run()`
#' only hands it the flow.
#'
#' @param flow A flow from [ledgerflow()].
#' @param ... Arguments used when the script was given none, e.g. `"run"`,
#'   `"--max-workers"`, `"4"`.
#' @return The command's exit status, invisibly (`Rscript` exits with it).
#' @export
run <- function(flow, ...) {
  check_flow(flow)
  if (isTRUE(getOption("ledgerflow.load_only"))) {
    state$flow <- flow
    return(invisible(0L))
  }
  check_graph(flow)
  script <- script_path()
  args <- commandArgs(trailingOnly = TRUE)
  if (length(args) == 0) args <- as.character(c(...))
  if (length(args) == 0) args <- "run"
  spec_file <- tempfile("ledgerflow-", fileext = ".json")
  on.exit(unlink(spec_file), add = TRUE)
  writeLines(flow_spec_json(flow, script), spec_file)
  status <- system2(python_binary(), c("-m", "ledgerflow.r", shQuote(spec_file), "--",
                                       shQuote(args)),
                    env = "LD_LIBRARY_PATH=")
  if (!interactive()) quit(save = "no", status = status)
  invisible(status)
}

state <- new.env(parent = emptyenv())

#' @noRd
python_binary <- function() {
  configured <- Sys.getenv("LEDGERFLOW_PYTHON")
  if (nzchar(configured)) return(configured)
  found <- Sys.which(c("python3", "python"))
  found <- found[nzchar(found)]
  if (length(found) == 0) {
    stop("no python3 on PATH: install Ledgerflow's Python package, or set LEDGERFLOW_PYTHON",
         call. = FALSE)
  }
  unname(found[1])
}

script_path <- function() {
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(file) == 0) {
    stop("run() runs a flow from its script: Rscript myflow.R run", call. = FALSE)
  }
  normalizePath(file[1])
}

flow_spec_json <- function(flow, script) {
  steps <- lapply(unname(flow$steps), function(s) {
    list(name = s$name, next_step = as.list(s$next_step), foreach = s$foreach,
         join = s$join,
         decorators = lapply(unname(s$decorators), function(d) {
           list(name = d$name, options = d$options)
         }))
  })
  parameters <- lapply(unname(flow$parameters), function(p) {
    list(name = p$name, default = p$default, help = p$help, required = p$required,
         type = if (is.null(p$default)) "character" else class(p$default)[1])
  })
  jsonlite::toJSON(list(name = flow$name, script = script, steps = steps,
                        parameters = parameters),
                   auto_unbox = TRUE, null = "null", digits = NA)
}
