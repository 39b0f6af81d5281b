# The checks a flow's graph passes before anything starts, each naming the step and the
# fix. (The runtime checks the graph again, as it does a Python flow's.)
check_graph <- function(flow) {
  names <- names(flow$steps)
  for (required in c("start", "end")) {
    if (!(required %in% names)) {
      stop(sprintf("flow %s has no '%s' step: a flow starts at step \"start\" and ends at step \"end\"",
                   flow$name, required), call. = FALSE)
    }
  }
  for (s in flow$steps) {
    # A step that several steps go to joins them: join = TRUE, taking (self, inputs).
    from <- names[vapply(flow$steps, function(o) s$name %in% o$next_step, logical(1))]
    if (length(from) > 1 && !isTRUE(s$join)) {
      advice <- if (s$name == "end") {
        "join them first: add a step with join = TRUE that goes to \"end\""
      } else {
        sprintf(paste0("make it a join, as in step(step = \"%s\", r_function = ",
                       "function(self, inputs) { ... }, join = TRUE)"), s$name)
      }
      stop(sprintf("step '%s' is reached from %s: %s", s$name, paste(from, collapse = ", "),
                   advice), call. = FALSE)
    }
    if (s$name == "end") {
      if (length(s$next_step) > 0) {
        stop("step 'end' ends the flow: remove its next_step", call. = FALSE)
      }
      next
    }
    if (length(s$next_step) == 0) {
      stop(sprintf("step '%s' has no next_step: add next_step = \"end\" (or the step that follows)",
                   s$name), call. = FALSE)
    }
    unknown <- setdiff(s$next_step, names)
    if (length(unknown) > 0) {
      stop(sprintf("step '%s': next_step '%s' is not a step of %s (its steps: %s)",
                   s$name, unknown[1], flow$name, paste(names, collapse = ", ")),
           call. = FALSE)
    }
    if (!is.null(s$foreach) && length(s$next_step) != 1) {
      stop(sprintf("step '%s': a foreach goes to one next_step, not %d",
                   s$name, length(s$next_step)), call. = FALSE)
    }
    if (s$join && !is.null(s$r_function) && length(formals(s$r_function)) < 2) {
      stop(sprintf("step '%s' is a join: its r_function takes (self, inputs)", s$name),
           call. = FALSE)
    }
    if (!s$join && !is.null(s$r_function) && length(formals(s$r_function)) < 1) {
      stop(sprintf("step '%s': its r_function takes self, as in function(self) { ... }",
                   s$name), call. = FALSE)
    }
    if (!is.null(s$foreach) && !reaches_join(flow, s$next_step)) {
      stop(sprintf(paste0("step '%s' starts a foreach over '%s' that is never joined: ",
                          "add a step with join = TRUE before \"end\""),
                   s$name, s$foreach), call. = FALSE)
    }
  }
  invisible(TRUE)
}

# Whether every path from `start` meets a join before "end".
reaches_join <- function(flow, start, seen = character()) {
  if (start %in% seen) return(TRUE)
  s <- flow$steps[[start]]
  if (is.null(s)) return(TRUE)
  if (s$join) return(TRUE)
  if (s$name == "end") return(FALSE)
  all(vapply(s$next_step, function(n) reaches_join(flow, n, c(seen, start)), logical(1)))
}
