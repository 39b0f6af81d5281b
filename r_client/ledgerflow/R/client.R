# The client functions: runs, artifacts, tags, namespaces and logs, read through one
# long-lived Python helper (python -m ledgerflow.r.helper, started on first use), so
# many reads cost one Python start.

helper <- new.env(parent = emptyenv())

ask <- function(op, ..., simplify = TRUE) {
  process <- helper$process
  if (is.null(process) || !process$is_alive()) {
    process <- processx::process$new(
      python_binary(), c("-m", "ledgerflow.r.helper"),
      stdin = "|", stdout = "|", stderr = "|",
      env = c("current", LD_LIBRARY_PATH = "")
    )
    helper$process <- process
  }
  request <- jsonlite::toJSON(c(list(op = op), list(...)), auto_unbox = TRUE, null = "null")
  process$write_input(paste0(request, "\n"))
  line <- character()
  errors <- character()
  while (length(line) == 0) {
    if (!process$is_alive() && length(line) == 0) {
      line <- process$read_output_lines()
      if (length(line) == 0) {
        errors <- c(errors, process$read_all_error_lines())
        said <- paste(last_lines(errors, 40), collapse = "\n")
        # The end of what it said (R cuts an error message at 1000 characters).
        if (nchar(said) > 800) said <- paste0("...", substring(said, nchar(said) - 800))
        stop("Ledgerflow's Python helper exited: ", said, call. = FALSE)
      }
      break
    }
    process$poll_io(5000)
    # Drain the helper's stderr as it comes: a helper whose stderr pipe is full blocks
    # writing to it for ever (and poll_io would return at once, spinning here).
    drained <- tryCatch(process$read_error_lines(), error = function(e) "(unreadable output)")
    errors <- last_lines(c(errors, drained), 200)
    line <- process$read_output_lines(n = 1)
  }
  answer <- jsonlite::fromJSON(line[1], simplifyVector = simplify)
  if (!isTRUE(answer$ok)) stop(answer$error, call. = FALSE)
  answer$value
}

last_lines <- function(lines, n) {
  if (length(lines) > n) lines[(length(lines) - n + 1):length(lines)] else lines
}

# An artifact as the helper gives it: R's serialization inline, or where to read it
# (its serialization, or its columns: python_client/ledgerflow/r/helper.py).
from_helper <- function(encoded) {
  if (!is.null(encoded$rds)) return(unserialize(jsonlite::base64_dec(encoded$rds)))
  at <- encoded$file
  con <- file(at$path, "rb")
  on.exit({
    close(con)
    if (isTRUE(at$temporary)) unlink(at$path)
  })
  parts <- lapply(at$parts, function(part) {
    seek(con, part$offset)
    switch(part$type,
           raw = readBin(con, "raw", part$size),
           double = readBin(con, "double", part$size / 8),
           integer = readBin(con, "integer", part$size / 4),
           logical = readBin(con, "logical", part$size / 4))
  })
  names <- as.character(unlist(at$names))
  if (at$kind == "rds") return(unserialize(parts[[1]]))
  if (at$kind == "vector") {
    value <- parts[[1]]
    if (length(names)) names(value) <- names
    return(value)
  }
  structure(parts, names = names, row.names = c(NA_integer_, -length(parts[[1]])),
            class = "data.frame")
}

#' The flows in the ledger
#'
#' @return Their names.
#' @examples
#' if (interactive()) {
#'   list_flows()
#' }
#' @export
list_flows <- function() as.character(unlist(ask("list_flows")))

#' A flow's runs in the current namespace
#'
#' @param flow The flow's name.
#' @param tags Only runs with all these tags.
#' @param limit At most this many, newest first.
#' @return A data.frame: one row a run (`pathspec`, `id`, `status`, `user`,
#'   `created_at`, `finished_at`, ...).
#' @examples
#' if (interactive()) {
#'   runs <- list_runs("MyFlow", limit = 5)
#'   runs[, c("id", "status", "created_at")]
#' }
#' @export
list_runs <- function(flow, tags = character(), limit = 100) {
  runs <- ask("list_runs", flow = flow, tags = I(as.character(tags)), limit = limit)
  if (length(runs) == 0) return(data.frame())
  runs$tags <- NULL
  runs$user_tags <- NULL
  runs
}

#' A run: its status, user, times and tags
#'
#' @param pathspec `"Flow/run_id"`.
#' @return A list.
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("MyFlow", limit = 1)$pathspec
#'   str(get_run(latest))
#' }
#' @export
get_run <- function(pathspec) ask("get_run", pathspec = pathspec)

#' A run's steps
#'
#' @param pathspec `"Flow/run_id"`.
#' @return A data.frame: one row a step, in the order the steps started
#'   (`pathspec`, `step`, `tasks`, `succeeded`, `failed`, `running`, `created_at`).
#'   A foreach's step has one task for each item.
#' @examples
#' if (interactive()) {
#'   # The flow of ?gather_inputs: its foreach's step, count, has three tasks.
#'   latest <- list_runs("Lengths", limit = 1)$pathspec
#'   steps <- list_steps(latest)
#'   steps$step[steps$tasks > 1]
#' }
#' @export
list_steps <- function(pathspec) {
  as_frame(ask("list_steps", pathspec = pathspec))
}

#' A step's tasks
#'
#' A foreach's step has one task for each item; their pathspecs read each one's
#' artifacts and logs: `get_artifact(list_tasks("MyFlow/12/count")$pathspec, "n")`.
#'
#' @param pathspec `"Flow/run_id/step"`.
#' @return A data.frame: one row a task (`pathspec`, `id`, `step`, `index`: its item's
#'   place in a foreach, `NA` outside one; `status`, `successful`, `retry_count`,
#'   `created_at`, `finished_at`).
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("Lengths", limit = 1)$pathspec
#'   tasks <- list_tasks(paste0(latest, "/count"))
#'   frames <- get_artifact(tasks$pathspec, "frame")  # one for each task
#'   do.call(rbind, frames[order(tasks$index)])
#' }
#' @export
list_tasks <- function(pathspec) {
  as_frame(ask("list_tasks", pathspec = pathspec))
}

as_frame <- function(rows) {
  if (length(rows) == 0) return(data.frame())
  rows <- as.data.frame(rows, stringsAsFactors = FALSE)
  rownames(rows) <- NULL
  rows
}

#' The names of a task's artifacts
#'
#' @param pathspec `"Flow/run_id"` (its end task), `"Flow/run_id/step"` (the step's
#'   task; an error naming the tasks where it has several, as a foreach's step has:
#'   name one, see [list_tasks()]) or `"Flow/run_id/step/task_id"`.
#' @return Artifact names.
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("MyFlow", limit = 1)$pathspec
#'   list_artifacts(latest)                    # the end task's
#'   list_artifacts(paste0(latest, "/join"))
#' }
#' @export
list_artifacts <- function(pathspec) as.character(unlist(ask("list_artifacts", pathspec = pathspec)))

#' An artifact's value, as an R value
#'
#' R artifacts come back exactly as stored; Python artifacts are converted (numbers,
#' strings, lists, dicts as named lists, pandas frames as data.frames).
#'
#' A step with several tasks (a foreach's) has a value in each: name the task, or read
#' them all with `get_artifact(list_tasks("MyFlow/12/count")$pathspec, name)`; the
#' step's pathspec alone is an error that names its tasks.
#'
#' @param pathspec As for [list_artifacts()], or a vector of them.
#' @param name The artifact's name.
#' @return The value (a list of values for several pathspecs).
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("MyFlow", limit = 1)$pathspec
#'   get_artifact(paste0(latest, "/join"), "out")  # 3, from the talk's flow (?step)
#' }
#' @export
get_artifact <- function(pathspec, name) {
  if (length(pathspec) == 1) {
    return(from_helper(ask("get_artifact", pathspec = pathspec, name = name, simplify = FALSE)))
  }
  encoded <- ask("get_artifacts", pathspecs = I(pathspec), name = name, simplify = FALSE)
  lapply(encoded, from_helper)
}

#' Add or remove a run's tags
#'
#' @param pathspec `"Flow/run_id"`.
#' @param tags Tags.
#' @return The run's tags now, invisibly.
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("MyFlow", limit = 1)$pathspec
#'   add_tags(latest, c("checked", "draft"))
#'   remove_tags(latest, "draft")
#'   list_runs("MyFlow", tags = "checked")$pathspec
#' }
#' @export
add_tags <- function(pathspec, tags) {
  ask("add_tags", pathspec = pathspec, tags = I(as.character(tags)))
  invisible(get_run(pathspec)$tags)
}

#' @rdname add_tags
#' @export
remove_tags <- function(pathspec, tags) {
  ask("remove_tags", pathspec = pathspec, tags = I(as.character(tags)))
  invisible(get_run(pathspec)$tags)
}

#' The namespace runs are listed in
#'
#' `set_namespace("user:savin")` lists only that user's runs; `set_namespace(NULL)`
#' lists everyone's.
#'
#' @param namespace A tag such as `"user:savin"`, or `NULL` for every run.
#' @return The namespace, invisibly.
#' @examples
#' if (interactive()) {
#'   mine <- get_namespace()   # "user:NAME" at first
#'   set_namespace(NULL)
#'   nrow(list_runs("MyFlow"))  # everyone's runs
#'   set_namespace(mine)
#' }
#' @export
set_namespace <- function(namespace) {
  invisible(ask("set_namespace", namespace = namespace))
}

#' @rdname set_namespace
#' @export
get_namespace <- function() ask("get_namespace")

#' Where runs are read from
#'
#' @param where `"local"`, `"local@/path/.ledgerflow"` or `"service@host:port"`.
#' @return The metadata now in use.
#' @examples
#' if (interactive()) {
#'   get_metadata()
#'   set_metadata("local")  # or "service@host:port" for a metadata service
#' }
#' @export
set_metadata <- function(where) ask("set_metadata", where = where)

#' @rdname set_metadata
#' @export
get_metadata <- function() ask("get_metadata")

#' A task's output
#'
#' One task's: for a step with several tasks (a foreach's), name one, or read each
#' with `lapply(list_tasks("MyFlow/12/count")$pathspec, get_logs)`.
#'
#' @param pathspec As for [list_artifacts()].
#' @param stream `"stdout"` or `"stderr"`.
#' @return The text.
#' @examples
#' if (interactive()) {
#'   latest <- list_runs("MyFlow", limit = 1)$pathspec
#'   cat(get_logs(paste0(latest, "/start")))
#'   cat(get_logs(paste0(latest, "/start"), "stderr"))
#' }
#' @export
get_logs <- function(pathspec, stream = c("stdout", "stderr")) {
  ask("logs", pathspec = pathspec, stream = match.arg(stream))
}

#' Resume a run of a flow's script
#'
#' Runs `Rscript script resume [step] [--origin-run-id ID]`: the steps before `step`
#' are cloned from the origin run (by default the latest), the rest run again.
#'
#' @param script The flow's R script.
#' @param step The step to resume from (by default the one that failed).
#' @param origin_run_id The run to resume.
#' @param ... More arguments for the command line.
#' @return The exit status, invisibly.
#' @examples
#' if (interactive()) {
#'   # myflow.R holds the talk's flow (?step) and ends with %>% run(); after a run
#'   # whose step b failed, and a fix to b:
#'   resume("myflow.R", step = "b")
#' }
#' @export
resume <- function(script, step = NULL, origin_run_id = NULL, ...) {
  args <- c(script, "resume", step,
            if (!is.null(origin_run_id)) c("--origin-run-id", origin_run_id), ...)
  invisible(system2(file.path(R.home("bin"), "Rscript"), shQuote(args)))
}
