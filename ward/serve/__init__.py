"""ward.serve"""
