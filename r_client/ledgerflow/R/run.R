#' Run a flow, or any other command of its command line
#'
#' The last link of a flow. From `Rscript myflow.R ARGS`, runs the flow's command line
#' with `ARGS` (`run`, `show`, `resume b`, `run --max-workers 4 --alpha 0.5`, `--help`;
#' no arguments: `run`), through the Ledgerflow runtime in Python, which runs each step
#' in R. The graph is checked first. When the runtime itself loads the script, `run()`
#' only hands it the flow.
#'
#' From an R session (the console, RStudio, `R -e`, or a file read with `source()`),
#' `run()` runs the flow as it is in the session: `run(flow)` (or the pipe's last
#' link), `run(flow, "resume", "b")`, `run(flow, "run", "--alpha", "0.5")`. The step
#' functions go to the runtime with the objects of the global environment they use
#' (other functions, data) and the packages attached in the session; the runtime's R
#' starts from them alone, so a step that reads an object the session creates later,
#' or a file by a relative path on an executor, does not find it. A command that fails
#' is an R error (the session stays up).
#'
#' @param flow A flow from [ledgerflow()].
#' @param ... The command and its arguments: from a script, used when it was given none
#'   (e.g. `"run"`, `"--max-workers"`, `"4"`); from a session, always.
#' @return The command's exit status, invisibly (`Rscript` exits with it).
#' @examples
#' flow <- ledgerflow("MyFlow") %>%
#'   step(step = "start", r_function = function(self) self$x <- 1, next_step = "end") %>%
#'   step(step = "end")
#' # From a session: needs Ledgerflow's Python package (`python3` on the PATH, or the
#' # Python that the environment variable LEDGERFLOW_PYTHON names).
#' if (interactive()) {
#'   run(flow)                               # a run
#'   run(flow, "show")                       # the graph
#'   run(flow, "run", "--max-workers", "4")  # a run, 4 tasks at a time
#' }
#' # From a script, myflow.R, ending with `%>% run()`, the command line says what to do:
#' #   Rscript myflow.R run --max-workers 4
#' @export
run <- function(flow, ...) {
  check_flow(flow)
  if (isTRUE(getOption("ledgerflow.load_only"))) {
    state$flow <- flow
    return(invisible(0L))
  }
  check_graph(flow)
  script <- script_path()
  session <- is.null(script)
  args <- if (session) character() else commandArgs(trailingOnly = TRUE)
  if (length(args) == 0) args <- as.character(c(...))
  if (length(args) == 0) args <- "run"
  if (session) script <- save_session_flow(flow)
  spec_file <- tempfile("ledgerflow-", fileext = ".json")
  on.exit(unlink(spec_file), add = TRUE)
  writeLines(flow_spec_json(flow, script, session), spec_file)
  status <- system2(python_binary(), c("-m", "ledgerflow.r", shQuote(spec_file), "--",
                                       shQuote(args)),
                    env = "LD_LIBRARY_PATH=")
  if (session) {
    if (status != 0) {
      stop(sprintf("%s %s exited with status %d: its output above says why", flow$name,
                   paste(args, collapse = " "), status), call. = FALSE)
    }
    return(invisible(status))
  }
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

# The script Rscript runs (`Rscript myflow.R`: it holds the flow, and the runtime reads
# it again), or NULL in a session, where the flow lives in the session alone: the
# console, RStudio, `R -e`, `R -f`, or a file read with source() (from a session or
# from another script).
script_path <- function() {
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(file) == 0 || inside_source()) return(NULL)
  normalizePath(file[1])
}

inside_source <- function() {
  readers <- list(base::source, base::sys.source)
  for (i in seq_len(sys.nframe())) {
    called <- sys.function(i)
    if (any(vapply(readers, identical, logical(1), called))) return(TRUE)
  }
  FALSE
}

# A flow from a session, saved for the runtime (which has none of the session): the
# flow with its step functions, the global objects they use (found by name in the
# functions, and again in the functions found), which the runtime puts in its global
# environment, and the packages the session attached. Saved as RDS in a folder of its
# own, which the runtime's flow file joins (and a code package carries).
save_session_flow <- function(flow) {
  folder <- file.path(tempdir(), "ledgerflow", flow$name)
  dir.create(folder, recursive = TRUE, showWarnings = FALSE)
  bundle <- file.path(folder, paste0(flow$name, ".RDS"))
  globals <- list()
  pending <- unname(lapply(flow$steps, function(s) s$r_function))
  while (length(pending) > 0) {
    fn <- pending[[1]]
    pending <- pending[-1]
    if (!is.function(fn) || is.primitive(fn)) next
    for (name in setdiff(global_names(fn), names(globals))) {
      value <- get(name, envir = globalenv())
      globals[name] <- list(value)
      pending <- c(pending, list(value))
    }
  }
  packages <- setdiff(rev(.packages()), c("base", "methods"))
  partial <- paste0(bundle, ".", Sys.getpid())
  saveRDS(list(flow = flow, globals = globals, packages = packages), partial)
  file.rename(partial, bundle)
  normalizePath(bundle)
}

# The names a function uses that the global environment holds (a function of a
# package finds what it uses in its namespace).
global_names <- function(fn) {
  if (isNamespace(topenv(environment(fn)))) return(character())
  used <- unique(c(all.names(body(fn)), unlist(lapply(formals(fn), function(default) {
    if (is.language(default)) all.names(default) else character()
  }))))
  used[vapply(used, exists, logical(1), envir = globalenv(), inherits = FALSE)]
}

flow_spec_json <- function(flow, script, session = FALSE) {
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
  jsonlite::toJSON(list(name = flow$name, script = script, session = session, steps = steps,
                        parameters = parameters),
                   auto_unbox = TRUE, null = "null", digits = NA)
}
