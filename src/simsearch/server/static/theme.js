// Light and dark themes: the system's choice (prefers-color-scheme) until the toggle sets one,
// which this browser then remembers. Loaded in <head> so the page never flashes the other theme.
"use strict";
(function () {
  const root = document.documentElement;
  const stored = localStorage.getItem("simsearch-theme");
  if (stored === "light" || stored === "dark") root.dataset.theme = stored;
  const system = window.matchMedia("(prefers-color-scheme: dark)");
  const current = () => root.dataset.theme || (system.matches ? "dark" : "light");
  function label(button) {
    const other = current() === "dark" ? "light" : "dark";
    button.textContent = other === "dark" ? "Dark theme" : "Light theme";
    button.setAttribute("aria-label", `Switch to the ${other} theme`);
  }
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    label(button);
    system.addEventListener("change", () => label(button));
    button.addEventListener("click", () => {
      root.dataset.theme = current() === "dark" ? "light" : "dark";
      localStorage.setItem("simsearch-theme", root.dataset.theme);
      label(button);
    });
  });
})();
